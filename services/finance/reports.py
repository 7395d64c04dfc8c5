"""Finance's read side: the budget, the reconciliation, the trace of a figure and the dashboard
snapshot, computed from the tables the projections keep. Money leaves here as "0.00" strings."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import and_, case, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from services.finance.db import StoredInvoice, activity, budget_lines, claims, invoices, ledger, members
from services.common.db import Cents
from services.finance.domain import AGEING_BUCKETS, LINES, ZERO, BudgetLine, Claim, Invoice, ageing_bucket, used_pct

RECENT_EVENTS = 20


def money(amount: Decimal | None) -> str:
    return f"{amount or ZERO:.2f}"


async def lines_of(session: AsyncSession, year: int) -> list[BudgetLine]:
    """The year's five lines (zeros for a year nothing has touched yet)."""
    found = {line.line: line for line in await session.scalars(select(BudgetLine).where(budget_lines.c.year == year))}
    return [found.get(name) or BudgetLine(year=year, line=name) for name in LINES]


def line_view(line: BudgetLine) -> dict[str, Any]:
    return {
        "line": line.line,
        "allocation": money(line.allocation),
        "available": money(line.available),
        "committed": money(line.committed),
        "spent": money(line.spent),
        "headroom": money(line.headroom),
        "used_pct": str(line.used_pct),
        "warning": line.warning,
        "held_claims": line.held,
    }


async def budget(session: AsyncSession, year: int) -> dict[str, Any]:
    lines = await lines_of(session, year)
    return {"year": year, "set": any(line.is_set for line in lines), "lines": {line.line: line_view(line) for line in lines}}


async def _invoices_of(session: AsyncSession, year: int, kind: str) -> list[tuple[Invoice, str | None]]:
    query = (
        select(StoredInvoice, members.c.name)
        .outerjoin(members, members.c.city_id == invoices.c.city_id)
        .where(invoices.c.year == year, invoices.c.kind == kind)
        .order_by(members.c.name, invoices.c.issued_on, invoices.c.id)
    )
    return [(invoice, name) for invoice, name in (await session.execute(query)).all()]


async def _credit_by_invoice(session: AsyncSession, year: int) -> dict[UUID, Decimal]:
    query = (
        select(ledger.c.ref, func.sum(ledger.c.amount))
        .where(ledger.c.year == year, ledger.c.account == "credit")
        .group_by(ledger.c.ref)
    )
    return {ref: total for ref, total in (await session.execute(query)).all()}


def _totals(rows: list[dict[str, Any]], on: date) -> dict[str, Any]:
    ageing = {name: ZERO for name, _ in AGEING_BUCKETS}
    for row in rows:
        if row["_outstanding"] > 0:
            ageing[row["bucket"]] += row["_outstanding"]
    sums = {k: sum((row[f"_{k}"] for row in rows), ZERO) for k in ("invoiced", "credited", "received", "outstanding", "overdue", "credit")}
    return {**{k: money(v) for k, v in sums.items()}, "ageing": {k: money(v) for k, v in ageing.items()}, "_sums": sums}


def _invoice_row(invoice: Invoice, name: str | None, credit: Decimal, on: date) -> dict[str, Any]:
    outstanding = invoice.outstanding
    overdue = outstanding if on > invoice.due_on else ZERO
    values = {"invoiced": invoice.amount, "credited": invoice.credited, "received": invoice.paid, "outstanding": outstanding,
              "overdue": overdue, "credit": credit}
    return {
        "city_id": str(invoice.city_id),
        "name": name,
        "invoice_id": str(invoice.id),
        "number": invoice.number,
        "status": invoice.status(on),
        **{k: money(v) for k, v in values.items()},
        "age_days": max((on - invoice.issued_on).days, 0),
        "bucket": ageing_bucket(invoice.issued_on, on),
        **{f"_{k}": v for k, v in values.items()},
    }


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


async def reconciliation(session: AsyncSession, year: int, on: date) -> dict[str, Any]:
    credits = await _credit_by_invoice(session, year)
    cities = [_invoice_row(i, n, credits.get(i.id, ZERO), on) for i, n in await _invoices_of(session, year, "contribution")]
    recharges = [_invoice_row(i, n, credits.get(i.id, ZERO), on) for i, n in await _invoices_of(session, year, "expert_visit_recharge")]
    totals, recharge_totals = _totals(cities, on), _totals(recharges, on)
    lines = await lines_of(session, year)
    administration = lines[0]
    planned = administration.allocation
    received = totals["_sums"]["received"]
    return {
        "year": year,
        "as_of": on.isoformat(),
        "contributions": {
            "total": {k: v for k, v in totals.items() if k != "_sums"},
            "cities": [_public(row) for row in cities],
        },
        "administration": {
            "planned": money(planned),
            "received": money(received),
            "expected": money(totals["_sums"]["outstanding"]),  # invoiced but unpaid: shown, not spendable
            "coverage_pct": str(used_pct(planned, received)) if planned else None,
            "committed": money(administration.committed),
            "spent": money(administration.spent),
            "headroom": money(administration.headroom),
        },
        "lines": [line_view(line) for line in lines],
        "recharges": {
            "total": {k: v for k, v in recharge_totals.items() if k != "_sums"},
            "invoices": [_public(row) for row in recharges],
        },
    }


RECONCILIATION_CSV_FIELDS = [
    "section", "key", "name", "number", "status", "invoiced", "credited", "received", "outstanding", "overdue", "credit", "bucket",
    "allocation", "available", "committed", "spent", "headroom", "used_pct",
]


def reconciliation_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, RECONCILIATION_CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report["contributions"]["cities"]:
        writer.writerow({"section": "contribution", "key": row["city_id"], **row})
    writer.writerow({"section": "contributions_total", "key": report["year"], **report["contributions"]["total"]})
    for row in report["recharges"]["invoices"]:
        writer.writerow({"section": "expert_visit_recharge", "key": row["city_id"], **row})
    for line in report["lines"]:
        writer.writerow({"section": "budget_line", "key": line["line"], **line})
    return out.getvalue()


async def trace(
    session: AsyncSession, year: int, account: str, *, budget_line: str | None = None, city_id: UUID | None = None,
    invoice_kind: str | None = None,
) -> dict[str, Any]:
    """The ledger rows a figure is the sum of, each with the event that made it."""
    where = [ledger.c.year == year, ledger.c.account == account]
    for column, value in ((ledger.c.budget_line, budget_line), (ledger.c.city_id, city_id), (ledger.c.invoice_kind, invoice_kind)):
        if value is not None:
            where.append(column == value)
    rows = (await session.execute(select(ledger).where(*where).order_by(ledger.c.position))).mappings().all()
    entries = [
        {
            "event_id": row["event_id"], "event_type": row["event_type"], "correlation_id": row["correlation_id"],
            "occurred_on": row["occurred_on"].isoformat(), "amount": money(row["amount"]), "budget_line": row["budget_line"],
            "invoice_kind": row["invoice_kind"], "city_id": str(row["city_id"]) if row["city_id"] else None,
            "ref": str(row["ref"]) if row["ref"] else None,
        }
        for row in rows
    ]
    return {"year": year, "account": account, "total": money(sum((row["amount"] for row in rows), ZERO)), "entries": entries}


async def credits(session: AsyncSession) -> list[dict[str, Any]]:
    """What each city has paid beyond its invoices, kept as its credit."""
    query = (
        select(ledger.c.city_id, members.c.name, func.sum(ledger.c.amount))
        .outerjoin(members, members.c.city_id == ledger.c.city_id)
        .where(ledger.c.account == "credit")
        .group_by(ledger.c.city_id, members.c.name)
        .order_by(members.c.name)
    )
    return [
        {"city_id": str(city_id), "name": name, "credit": money(total)}
        for city_id, name, total in (await session.execute(query)).all()
        if total
    ]


async def _spending(session: AsyncSession, year: int) -> dict[str, str]:
    coe_funded = case((claims.c.status == "paid", claims.c.paid_amount), else_=claims.c.amount)
    european = case((and_(claims.c.european.is_(True), claims.c.status.in_(["approved", "paid"])), coe_funded), else_=0)
    non_european = case((claims.c.european.is_(False), claims.c.city_borne + claims.c.recharged), else_=0)
    query = select(
        type_coerce(func.coalesce(func.sum(european), 0), Cents()), type_coerce(func.coalesce(func.sum(non_european), 0), Cents())
    ).where(claims.c.year == year)
    european_total, non_european_total = (await session.execute(query)).one()
    return {"european": money(european_total), "non_european": money(non_european_total)}


async def snapshot(session: AsyncSession, year: int, now: datetime | None = None) -> dict[str, Any]:
    """Everything the finance dashboard shows for one year, as of now."""
    now = now or datetime.now(UTC)
    report = await reconciliation(session, year, now.date())
    total = report["contributions"]["total"]
    held = await session.scalars(
        select(Claim).where(claims.c.year == year, claims.c.status == "held").order_by(claims.c.held_since, claims.c.claim_id)
    )
    recent = (await session.execute(select(activity).order_by(activity.c.position.desc()).limit(RECENT_EVENTS))).mappings().all()
    return {
        "year": year,
        "as_of": now.isoformat().replace("+00:00", "Z"),
        "budget": [{k: v for k, v in line.items() if k != "held_claims"} for line in report["lines"]],
        "contributions": {k: total[k] for k in ("invoiced", "received", "outstanding", "overdue", "credit", "ageing")},
        "held_claims": [
            {
                "claim_id": str(claim.claim_id), "city_id": str(claim.city_id) if claim.city_id else None, "amount": money(claim.amount),
                "budget_line": claim.budget_line, "held_since": claim.held_since.isoformat().replace("+00:00", "Z"),
            }
            for claim in held
        ],
        "spending": await _spending(session, year),
        "recent_events": [
            {
                "id": row["event_id"], "type": row["type"], "occurred_at": row["occurred_at"].isoformat().replace("+00:00", "Z"),
                "summary": row["summary"],
            }
            for row in recent
        ],
    }
