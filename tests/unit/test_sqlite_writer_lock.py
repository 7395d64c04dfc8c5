"""The SQLite writer lock's turns (services.common.sqlite.WriterLock): the pipeline's transactions
(relay, consumers) and the requests' each queue first come first served, and the two queues take
turns, so neither waits behind all of the other's."""

import asyncio

import pytest

from services.common.sqlite import IN_PIPELINE, WriterLock


async def _take(lock: WriterLock, name: str, pipeline: bool, order: list[str]) -> None:
    IN_PIPELINE.set(pipeline)  # this task's own context
    await lock._acquire()
    order.append(name)
    await asyncio.sleep(0)
    lock._release()


async def _queued(lock: WriterLock, *waiters: tuple[str, bool]) -> list[str]:
    """Each waiter queues, in this order, while the lock is held by a request; then it is released."""
    order: list[str] = []
    await lock._acquire()  # a request holds it
    tasks = []
    for name, pipeline in waiters:
        tasks.append(asyncio.create_task(_take(lock, name, pipeline, order)))
        await asyncio.sleep(0)  # queued in this order
    lock._release()
    await asyncio.gather(*tasks)
    return order


async def test_pipeline_work_waits_for_one_request_not_for_every_request_queued_before_it() -> None:
    order = await _queued(WriterLock(), ("r1", False), ("r2", False), ("r3", False), ("relay", True), ("consumer", True))
    assert order == ["relay", "r1", "consumer", "r2", "r3"]


async def test_requests_keep_their_turn_while_the_pipeline_is_busy() -> None:
    order = await _queued(WriterLock(), ("p1", True), ("p2", True), ("p3", True), ("r1", False), ("r2", False))
    assert order == ["p1", "r1", "p2", "r2", "p3"]


async def test_a_waiter_that_gives_up_does_not_keep_the_lock_from_the_next() -> None:
    lock, order = WriterLock(), []
    await lock._acquire()
    impatient = asyncio.create_task(_take(lock, "impatient", True, order))
    patient = asyncio.create_task(_take(lock, "patient", True, order))
    await asyncio.sleep(0)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    lock._release()
    await patient
    assert order == ["patient"]
    await asyncio.wait_for(lock._acquire(), 1)  # free again
