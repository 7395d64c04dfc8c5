"""Finance handlers: plain functions for commands and for the events finance consumes."""

from datetime import date

from contracts.events import CityJoined, CityLeft
from services.common.api import today
from services.finance.db import FinanceUnitOfWork
from services.finance.domain import Invoice, Member, contribution_year


async def issue_contribution(uow: FinanceUnitOfWork, member: Member, year: int, issued_on: date) -> Invoice | None:
    """Invoice a member's contribution for `year` unless it already has one (replays change nothing)."""
    if await uow.invoices.contribution(member.city_id, year) is not None:
        return None
    invoice = Invoice.contribution(member.city_id, year, issued_on)
    uow.invoices.add(invoice)
    uow.emit(invoice.issued())
    return invoice


async def on_city_joined(event: CityJoined, uow: FinanceUnitOfWork) -> None:
    member = await uow.members.get(event.city_id)
    if member is None:
        member = Member(city_id=event.city_id, name=event.name, european=event.european, joined_on=event.joined_on)
        uow.members.add(member)
    else:  # rejoined after leaving
        member.left_on, member.joined_on, member.european = None, event.joined_on, event.european
    await issue_contribution(uow, member, contribution_year(event.joined_on), today())


async def on_city_left(event: CityLeft, uow: FinanceUnitOfWork) -> None:
    # Invoices already issued stay due; the member just drops out of future annual runs.
    if member := await uow.members.get(event.city_id):
        member.left_on = event.effective_on


HANDLERS = {CityJoined: on_city_joined, CityLeft: on_city_left}
