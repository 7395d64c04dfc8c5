"""The rebuild: `python -m services.finance.rebuild` over N events put on the topics beforehand.

The history is a network's worth of ordinary facts, five per city: it joins, finance invoices it,
it pays, one of its delegates claims travel costs, finance approves the claim (plus the year's
budget). Only the rebuild itself is timed; its own progress bar shows on the terminal."""

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal

from bench.kit import ROOT, Run, producer, record, say
from contracts.events import BudgetSet, CityJoined, InvoiceIssued, PaymentReceived, ReimbursementApproved, TravelClaimed
from contracts.topics import Topic
from deploy.kafka.principals import login

PER_CITY = 5


def history(cities: int, year: int):
    """The events, in the order they happened."""
    yield record(BudgetSet(year=year, administration=Decimal("0.00"), delegate_travel=Decimal("100000000.00"),
                           expert_visits=Decimal("0.00"), index_analysis=Decimal("0.00"), events=Decimal("0.00")), "finance")
    issued = date(year, 3, 1)
    for i in range(cities):
        city, invoice, claim = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        yield record(CityJoined(city_id=city, name=f"City {i}", country="FR", european=True, joined_on=issued), "membership")
        yield record(InvoiceIssued(invoice_id=invoice, city_id=city, kind="contribution", year=year, amount=Decimal("5000.00"),
                                   issued_on=issued, due_on=issued + timedelta(days=60)), "finance")
        yield record(PaymentReceived(invoice_id=invoice, city_id=city, amount=Decimal("5000.00"), paid_on=issued, reference=f"PAY-{i}"), "finance")
        yield record(TravelClaimed(claim_id=claim, registration_id=uuid.uuid4(), workshop_id=uuid.uuid4(), city_id=city,
                                   delegate_email=f"d{i}@bench.example", european=True, budget_line="delegate_travel",
                                   coe_funded=Decimal("400.00"), city_borne=Decimal("0.00"), submitted_on=issued, event_year=year), "travel")
        yield record(ReimbursementApproved(claim_id=claim, amount=Decimal("400.00"), budget_line="delegate_travel", year=year), "finance")


TOPIC_OF = {"CityJoined": Topic.CITIES, "InvoiceIssued": Topic.INVOICES, "PaymentReceived": Topic.INVOICES,
            "TravelClaimed": Topic.CLAIMS, "ReimbursementApproved": Topic.REIMBURSEMENTS, "BudgetSet": Topic.BUDGETS}


async def rebuild(run: Run, events: int) -> tuple[int, float]:
    """Puts about `events` events on fresh topics, rebuilds from them; returns (events applied, seconds)."""
    prefix = run.prefix()
    await run.create_topics(f"{prefix}{t.value}" for t in set(TOPIC_OF.values()))
    cities = max(1, (events - 1) // PER_CITY)
    total = 1 + cities * PER_CITY
    say(f"rebuild: putting {total} events on the topics (not timed) ...")
    send = producer(run.kafka, linger_ms=20, max_batch_size=256 * 1024)
    await send.start()
    try:
        pending, last_said = [], time.monotonic()
        for n, (k, v, h) in enumerate(history(cities, date.today().year), start=1):
            event_type = next(value.decode() for name, value in h if name == "ce_type")
            pending.append(await send.send(f"{prefix}{TOPIC_OF[event_type].value}", value=v, key=k, headers=h))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
                if time.monotonic() - last_said > 5:
                    say(f"  {n}/{total} events on the topics")
                    last_said = time.monotonic()
        await asyncio.gather(*pending)
    finally:
        await send.stop()

    target = run.database_env("rebuilt")
    command = [sys.executable, "-m", "services.finance.rebuild", "--into", target["DATABASE_URL"]]
    if "DATABASE_SCHEMA" in target:
        command += ["--schema", target["DATABASE_SCHEMA"]]
    await run.grant(prefix, ["finance"])  # the rebuild reads as finance
    env = {**os.environ, **login(run.kafka, "finance").env(), "KAFKA_TOPIC_PREFIX": prefix}
    say(f"rebuild: python -m services.finance.rebuild over {total} events ...")
    started = time.monotonic()
    finished = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    seconds = time.monotonic() - started
    if finished.returncode != 0:
        raise SystemExit(f"the rebuild failed ({finished.returncode}): {finished.stdout}")
    applied = int(re.search(r"(\d+) events applied", finished.stdout).group(1))
    if applied != total or " 0 unreadable" not in finished.stdout:
        raise SystemExit(f"the rebuild applied {applied} of {total} events: {finished.stdout}")
    return applied, seconds
