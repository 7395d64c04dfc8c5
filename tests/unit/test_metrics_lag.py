"""The consumer lag /metrics reports: per partition this process holds, end offset - committed
offset (from the partition's start when the group has committed nothing there yet)."""

from types import SimpleNamespace

from aiokafka import TopicPartition

from services.common.metrics import Metrics
from tests.support import metric

CITIES = "icc.membership.cities"


class Consumer:
    def __init__(self, held: dict[int, tuple[int | None, int, int]]) -> None:
        self.held = {TopicPartition(CITIES, p): offsets for p, offsets in held.items()}  # committed, start, end

    def assignment(self) -> set[TopicPartition]:
        return set(self.held)

    async def end_offsets(self, partitions):
        return {p: self.held[p][2] for p in partitions}

    async def committed(self, partition):
        return self.held[partition][0]

    async def beginning_offsets(self, partitions):
        return {p: self.held[p][1] for p in partitions}


async def pending() -> int:
    return 3


async def scrape(metrics: Metrics, *consumers) -> str:
    broker = SimpleNamespace(subscribers=[SimpleNamespace(consumer=c) for c in consumers])
    return (await metrics.scrape(pending, broker)).decode()


async def test_lag_per_held_partition_and_from_the_start_where_nothing_was_committed() -> None:
    metrics = Metrics("finance")
    text = await scrape(metrics, Consumer({0: (40, 0, 45), 1: (None, 10, 17), 2: (9, 0, 9)}))
    assert metric(text, "icc_consumer_lag", every=True) == {
        (("partition", "0"), ("topic", CITIES)): 5,
        (("partition", "1"), ("topic", CITIES)): 7,
        (("partition", "2"), ("topic", CITIES)): 0,
    }
    assert metric(text, "icc_outbox_pending") == 3
    # after a rebalance this process holds partition 2 only: the others are another replica's to report
    text = await scrape(metrics, Consumer({2: (9, 0, 12)}))
    assert metric(text, "icc_consumer_lag", every=True) == {(("partition", "2"), ("topic", CITIES)): 3}


async def test_no_lag_series_before_the_broker_answers_or_when_it_does_not() -> None:
    metrics = Metrics("finance")
    await scrape(metrics, Consumer({0: (1, 0, 5)}))

    class Away(Consumer):
        async def end_offsets(self, partitions):
            raise ConnectionError("broker away")

    assert metric(await scrape(metrics, Away({0: (1, 0, 5)})), "icc_consumer_lag", every=True) == {}
    assert metric((await metrics.scrape(pending, None)).decode(), "icc_consumer_lag", every=True) == {}
