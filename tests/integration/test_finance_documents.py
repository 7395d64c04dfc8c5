"""Legal numbers, budget thresholds and the PDF routes, on SQLite and PostgreSQL."""

import asyncio
from datetime import date
from io import BytesIO

from pathlib import Path
from uuid import uuid4

import pytest
from pypdf import PdfReader
from sqlalchemy import Uuid, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import CityJoined
from services.common.api import today
from services.finance.app import build_app
from services.common.db import create_engine, migrate
from services.finance.db import Numbers
from services.finance.db import invoices as invoice_rows
from services.finance.settings import FinanceSettings
from tests.integration.test_finance_budget import NO_BROKER, claimed, deliver, emitted, record, set_budget
from tests.integration.test_finance_contributions import invoices_of, joined
from tests.identity import STAND_IN
from tests.support import running

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "finance" / "migrations"
IBAN = "FR76 3000 4000 5000 6000 7000 890"


@pytest.fixture
async def finance(databases):
    app = build_app(FinanceSettings(**NO_BROKER, **databases("finance"), bank_iban=IBAN, bank_account_holder="Council of Europe"))
    async with running(app) as client:
        yield client, app.state.runtime


def series(numbers: list[str], prefix: str) -> list[str]:
    """What a gap-free series of that many numbers is: prefix-YEAR-0001 onwards (the year of issue)."""
    return [f"{prefix}-{today().year}-{n:04d}" for n in range(1, len(numbers) + 1)]


async def test_invoice_numbers_are_sequential_and_gap_free_under_concurrent_invoicing(finance) -> None:
    client, runtime = finance
    history = [record(joined(date(2026, 1, 1 + i), f"City {i:02}"), service="membership") for i in range(10)]
    await runtime.consumer.apply(history)  # ten invoices for 2026, numbered on joining
    late = [joined(date(2026, 2, 1), f"Late {i}") for i in range(4)]
    await asyncio.gather(
        *(client.post("/contribution-runs", json={"year": 2027}) for _ in range(3)),  # runs that collide and retry
        *(deliver(runtime, city) for city in late),  # joins invoiced meanwhile
        runtime.consumer.apply(history),  # and a replay
    )
    async with runtime.sessions() as session:
        numbers = sorted((await session.scalars(select(invoice_rows.c.number))).all())
    # 2026 and 2027 for the ten and for the four late ones: a join racing the run is invoiced for the
    # run's year by the run or by its join, never by neither (joins and runs take turns on PostgreSQL)
    assert len(numbers) == 10 + 4 + 10 + 4
    assert numbers == series(numbers, "ICC")  # each once, none skipped (rolled-back runs gave theirs back)
    issued = await emitted(runtime, "InvoiceIssued")
    assert sorted(p["number"] for _, p in issued) == numbers  # the events carry them
    listed = [i["number"] for c in late for i in await invoices_of(client, c.city_id)]
    assert set(listed) <= set(numbers) and len(listed) >= 4


async def test_a_batch_takes_its_counter_once_and_an_event_rolled_back_gives_its_numbers_back(finance, monkeypatch) -> None:
    """Numbers are counted on in memory within a batch's transaction (one UPDATE takes the counter,
    one stores it); an event whose handler fails is rolled back to its savepoint, and so are the
    numbers it took: the series stays gap-free."""
    from sqlalchemy import event

    from services.finance import handlers

    client, runtime = finance
    counter_writes: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and "document_numbers" in statement:
            counter_writes.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await runtime.consumer.apply([record(joined(date(2026, 1, 1 + i), f"Batch {i:02}"), service="membership") for i in range(6)])
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", seen)
    # six invoices: the year's counter created and taken once (two bumps around its INSERT), stored
    # once at the commit; numbered one UPDATE each, that was seven
    assert len(counter_writes) == 3, counter_writes

    cities = [joined(date(2026, 2, 1 + i), f"Second {i:02}") for i in range(4)]
    doomed = cities[1].city_id
    record_fact = handlers.record

    async def failing_after_numbering(uow, fact):
        if getattr(fact, "city_id", None) == doomed and type(fact).__name__ == "InvoiceIssued":
            raise RuntimeError("this city's invoice cannot be recorded")  # after issue() took its number
        return await record_fact(uow, fact)

    monkeypatch.setattr(handlers, "record", failing_after_numbering)
    try:
        await runtime.consumer.apply([record(city, service="membership") for city in cities])
    finally:
        monkeypatch.setattr(handlers, "record", record_fact)
    async with runtime.sessions() as session:
        numbers = sorted((await session.scalars(select(invoice_rows.c.number))).all())
        counter = (await session.execute(text("SELECT next FROM document_numbers WHERE series = 'ICC'"))).scalar_one()
    assert numbers == series(numbers, "ICC") and len(numbers) == 6 + 3  # the failed one's number went to the next city
    assert counter == 10  # the row says where the batches got to
    await deliver(runtime, joined(date(2026, 3, 1), "After"))  # the next transaction takes the row afresh
    [after] = await invoices_of(client, await _city_named(runtime, "After"))
    assert after["number"] == f"ICC-{today().year}-0010"


async def _city_named(runtime, name: str):
    async with runtime.sessions() as session:
        return (await session.execute(text("SELECT city_id FROM members WHERE name = :n"), {"n": name})).scalar_one()


async def test_a_credit_note_is_numbered_in_its_own_series(finance) -> None:
    client, runtime = finance
    city = joined(date(2026, 3, 1))
    await deliver(runtime, city)
    [invoice] = await invoices_of(client, city.city_id)
    assert invoice["number"] == f"ICC-{today().year}-0001"
    for amount in ("100.00", "50.00"):
        assert (await client.post(f"/invoices/{invoice['id']}/credit-notes", json={"amount": amount, "reason": "pro rata"})).status_code == 201
    notes = (await client.get(f"/invoices/{invoice['id']}/credit-notes")).json()
    assert [(n["number"], n["amount"]) for n in notes] == [
        (f"ICC-CN-{today().year}-0001", "100.00"), (f"ICC-CN-{today().year}-0002", "50.00")
    ]
    assert [p["number"] for _, p in await emitted(runtime, "CreditNoteIssued")] == [n["number"] for n in notes]
    assert (await client.get(f"/invoices/{invoice['id']}")).json()["number"] == invoice["number"]  # never renumbered


def pdf_text(response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(BytesIO(response.content)).pages)
    return text.replace("\xa0", " ")


async def test_the_invoice_credit_note_and_statement_pdfs_in_english_and_french(finance) -> None:
    client, runtime = finance
    city = CityJoined(city_id=joined(date(2026, 3, 1)).city_id, name="Lisboa", country="PT", european=True, joined_on=date(2026, 3, 1))
    await deliver(runtime, city)
    [invoice] = await invoices_of(client, city.city_id)
    due = date.fromisoformat(invoice["due_on"])
    english = pdf_text(await client.get(f"/invoices/{invoice['id']}.pdf"))
    french = pdf_text(await client.get(f"/invoices/{invoice['id']}.pdf", params={"lang": "fr"}))
    for text, amount, due_on in ((english, "€5,000.00", f"{due:%B} {due.day}, {due.year}"), (french, "5 000,00 €", None)):
        for figure in (invoice["number"], "Lisboa", amount, IBAN, "Council of Europe"):
            assert figure in text, (figure, text)
        if due_on:
            assert due_on in text
    assert "Facture" in french and "Date d'échéance" in french and "Invoice" in english
    assert (await client.get(f"/invoices/{invoice['id']}.pdf", params={"lang": "de"})).status_code == 422

    assert (await client.post(f"/invoices/{invoice['id']}/credit-notes", json={"amount": "1000.00", "reason": "pro rata"})).status_code == 201
    await client.post(f"/invoices/{invoice['id']}/payments", json={"amount": "1500.00", "paid_on": today().isoformat(), "reference": "BANK-77"})
    [note] = (await client.get(f"/invoices/{invoice['id']}/credit-notes")).json()
    note_text = pdf_text(await client.get(f"/credit-notes/{note['id']}.pdf", params={"lang": "fr"}))
    assert note["number"] in note_text and invoice["number"] in note_text and "1 000,00 €" in note_text and "Note de crédit" in note_text

    statement = pdf_text(await client.get(f"/statements/{city.city_id}.pdf", params={"year": invoice["year"]}))
    for figure in (invoice["number"], note["number"], "BANK-77", "€5,000.00", "€1,000.00", "€1,500.00", "€2,500.00"):
        assert figure in statement, (figure, statement)
    assert (await client.get(f"/statements/{joined(date(2026, 1, 1)).city_id}.pdf")).status_code == 404
    assert (await client.get(f"/credit-notes/{invoice['id']}.pdf")).status_code == 404


async def test_a_coordinator_gets_their_own_citys_pdfs_only(finance) -> None:
    client, runtime = finance
    ours, theirs = joined(date(2026, 3, 1), "Ours"), joined(date(2026, 3, 1), "Theirs")
    await deliver(runtime, ours, theirs)
    [own], [other] = [await invoices_of(client, c.city_id) for c in (ours, theirs)]
    coordinator = STAND_IN.bearer("city_coordinator", username="olav", city_id=str(ours.city_id))
    assert (await client.get(f"/invoices/{own['id']}.pdf", headers=coordinator)).status_code == 200
    assert (await client.get(f"/invoices/{other['id']}.pdf", headers=coordinator)).status_code == 404
    assert (await client.get(f"/statements/{ours.city_id}.pdf", headers=coordinator)).status_code == 200
    assert (await client.get(f"/statements/{theirs.city_id}.pdf", headers=coordinator)).status_code == 404


async def thresholds(runtime) -> list[tuple[str, int, str, str]]:
    return [(p["budget_line"], p["threshold"], p["allocation"], p["used"]) for _, p in await emitted(runtime, "BudgetThresholdCrossed")]


async def test_budget_thresholds_are_published_once_each_at_80_and_90(finance) -> None:
    client, runtime = finance
    await set_budget(client, delegate_travel="1000.00", events="1000.00")
    claims = [claimed(amount) for amount in ("700.00", "100.00", "50.00", "60.00", "10.00")]
    for claim in claims:
        await deliver(runtime, claim)
    assert await thresholds(runtime) == [("delegate_travel", 80, "1000.00", "800.00"), ("delegate_travel", 90, "1000.00", "910.00")]

    await runtime.consumer.apply([record(c) for c in claims])  # a replay tells nothing again
    spent = await client.post("/budgets/2026/spending", json={"budget_line": "events", "kind": "spent", "amount": "850.00", "reference": "venue"})
    assert spent.status_code == 201, spent.text
    await set_budget(client, delegate_travel="1000.00", events="900.00")  # lowered: 850 of 900 is over 90%
    assert (await thresholds(runtime))[2:] == [("events", 80, "1000.00", "850.00"), ("events", 90, "900.00", "850.00")]
    await set_budget(client, delegate_travel="1000.00", events="900.00", index_analysis="1000.00")
    big = await client.post("/budgets/2026/spending", json={"budget_line": "index_analysis", "kind": "commitment", "amount": "950.00", "reference": "study"})
    assert big.status_code == 201, big.text  # both at once, in order, each once
    assert (await thresholds(runtime))[4:] == [("index_analysis", 80, "1000.00", "950.00"), ("index_analysis", 90, "1000.00", "950.00")]
    await set_budget(client, delegate_travel="2000.00", events="2000.00", index_analysis="1000.00")
    await set_budget(client, delegate_travel="1000.00", events="900.00", index_analysis="1000.00")  # back over: already told
    assert len(await thresholds(runtime)) == 6


async def test_the_migration_numbers_invoices_issued_before_numbering_in_issue_order(databases) -> None:
    settings = FinanceSettings(**databases("finance"))
    engine = create_engine(settings.db_url, settings.db_schema)
    ids = [uuid4() for _ in range(4)]
    try:
        await migrate(engine, settings.db_schema, MIGRATIONS, target="finance_0003")  # the release before numbering
        insert = text("INSERT INTO invoices (id, city_id, kind, year, amount, issued_on, due_on, paid, credited) "
                      "VALUES (:id, :city, 'contribution', :year, 500000, :on, :on, 0, 0)").bindparams(
            bindparam("id", type_=Uuid), bindparam("city", type_=Uuid))
        async with engine.begin() as db:
            for invoice_id, year, on in zip(ids, (2026, 2026, 2027, 2026), (date(2026, 5, 1), date(2026, 2, 1), date(2027, 1, 3), date(2027, 1, 2))):
                await db.execute(insert, {"id": invoice_id, "city": uuid4(), "year": year, "on": on})
        await migrate(engine, settings.db_schema, MIGRATIONS)
        async with engine.begin() as db:
            numbered = {row.id: row.number for row in await db.execute(select(invoice_rows.c.id, invoice_rows.c.number))}
        # per year of issue, in issue order
        assert [numbered[i] for i in ids] == ["ICC-2026-0002", "ICC-2026-0001", "ICC-2027-0002", "ICC-2027-0001"]
        async with engine.begin() as db:  # the series goes on after them
            session = AsyncSession(bind=db)
            assert await Numbers(session).take("ICC", 2027) == "ICC-2027-0003"
            assert await Numbers(session).take("ICC-CN", 2027) == "ICC-CN-2027-0001"
    finally:
        await engine.dispose()
