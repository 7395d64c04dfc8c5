"""Travel handlers: the commands delegates and the secretariat give, and the facts travel consumes."""

import logging
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from contracts.events import (
    DelegateRegistered,
    RegistrationCancelled,
    RegistrationFundingChanged,
    RegistrationPromoted,
    ReimbursementApproved,
    ReimbursementHeld,
    ReimbursementPaid,
    ReimbursementRejected,
    WorkshopCancelled,
    WorkshopRescheduled,
    WorkshopScheduled,
)
from contracts.money import EUR
from services.common.db import utcnow
from services.common.members import membership_handlers
from services.common.refusals import Conflict, NotFound, NotYetKnown
from services.travel import domain, receipts
from services.travel.db import StoredCity, StoredEvent, StoredRegistration, TravelUnitOfWork
from services.travel.domain import (
    AllowanceRate,
    ClaimStatus,
    Decision,
    ExchangeRate,
    Expense,
    ExpertVisit,
    KnownCity,
    KnownEvent,
    Rates,
    Registration,
    Stay,
    TravelClaim,
)
from services.travel.receipts import Receipt

log = logging.getLogger("icc.travel")


# --- commands -----------------------------------------------------------------------------


def _exchange_wanted(expenses: list[Expense]) -> list[tuple[str, date]]:
    return sorted({(e.currency, e.spent_on) for e in expenses if e.currency != EUR})


async def _exchange_rates(uow: TravelUnitOfWork, expenses: list[Expense]) -> dict[tuple[str, date], ExchangeRate | None]:
    return {(currency, on): await uow.exchange_rates.in_force(currency, on) for currency, on in _exchange_wanted(expenses)}


async def _rates(uow: TravelUnitOfWork, event: KnownEvent, stay: Stay) -> Rates:
    allowance = await uow.allowance_rates.in_force(event.host_country, event.starts_on)
    return Rates(allowance, await _exchange_rates(uow, stay.expenses))


# Whether the caller may act for a delegate's record: (city id, delegate's e-mail) -> bool.
MayAct = Callable[[UUID, str], bool]


def _anyone(city_id: UUID, email: str) -> bool:
    return True


async def _claimant(
    uow: TravelUnitOfWork, registration_id: UUID, may_act: MayAct = _anyone, *, lock: bool = True,
) -> tuple[Registration, KnownCity, KnownEvent]:
    """The registration, its city and its event, the event locked: the city's funded places for it
    are counted one claim at a time (PostgreSQL row lock; SQLite serialises writers anyway). A quote
    counts them without the lock: it takes no place."""
    # All three in one statement (the event locked) when all three are known; a quote looks them up one by one.
    found = await uow.claimant(registration_id) if lock else None
    registration = found[0] if found else await uow.registrations.get(registration_id)
    if registration is None:
        # Most likely events' DelegateRegistered has not reached travel yet: worth a retry.
        raise NotYetKnown(f"registration {registration_id} is not known to travel (yet); if it was just made, retry shortly")
    if not may_act(registration.city_id, registration.delegate_email):
        raise NotFound(f"no registration {registration_id} of yours (a delegate claims for their own, a coordinator "
                       f"for their city's delegates)", code="not_found")
    if found:
        _, city, event = found
    else:  # the event or the city is unknown, or a quote: looked up one by one, to say which
        event = await uow.workshops.get(registration.workshop_id, for_update=lock)
        if event is None:
            raise NotYetKnown(f"the event {registration.workshop_id} of registration {registration_id} is not known to travel yet")
        city = await uow.cities.get(registration.city_id)
    if city is None or city.applicant:
        # Events registered its delegate as a member's: travel has yet to consume that CityJoined.
        raise NotYetKnown(f"travel has not yet learnt that city {registration.city_id} joined the network; retry shortly")
    return registration, city, event


async def _record(uow: TravelUnitOfWork, claim: TravelClaim, duplicate: str) -> TravelClaim:
    uow.emit(claim.claimed_event())
    try:
        await uow.claims.insert(claim)
        await uow.commit()
    except IntegrityError as err:  # the same registration claimed twice at once: a unique key decides
        raise Conflict(duplicate, code="already_claimed") from err
    return claim


async def _check_receipts(uow: TravelUnitOfWork, stay: Stay, city_id: UUID, delegate_email: str) -> None:
    """The uploaded receipts the lines name are the claimant's own (see domain.check_receipts)."""
    if named := {expense.receipt_id for expense in stay.expenses if expense.receipt_id}:
        domain.check_receipts(stay.expenses, await uow.receipts.among(named), city_id, delegate_email)


async def _priced(uow: TravelUnitOfWork, registration_id: UUID, stay: Stay, today: date, may_act: MayAct, *, lock: bool) -> TravelClaim:
    """A new claim decided as submitting it would: every check, the same pricing; not yet recorded."""
    registration, city, event = await _claimant(uow, registration_id, may_act, lock=lock)
    facts = await uow.claim_facts(registration_id, event, city.city_id, _exchange_wanted(stay.expenses))
    if facts.claimed:
        domain.check_no_claim_yet(await uow.claims.latest_for(registration_id))
    await _check_receipts(uow, stay, registration.city_id, registration.delegate_email)
    return domain.submit_claim(registration, city, event, stay, facts.rates, coe_funded_claims=facts.coe_funded_claims, today=today)


async def submit_claim(uow: TravelUnitOfWork, registration_id: UUID, stay: Stay, today: date, may_act: MayAct = _anyone) -> TravelClaim:
    claim = await _priced(uow, registration_id, stay, today, may_act, lock=True)
    return await _record(uow, claim, f"registration {registration_id} already has a claim: one claim per delegate and event")


async def quote_claim(uow: TravelUnitOfWork, registration_id: UUID, stay: Stay, today: date, may_act: MayAct = _anyone) -> TravelClaim:
    """What submitting would decide today (or the refusal it would give), stored nowhere, published
    nowhere: the caller's unit of work is left to roll back."""
    return await _priced(uow, registration_id, stay, today, may_act, lock=False)


async def resubmit_claim(uow: TravelUnitOfWork, claim_id: UUID, stay: Stay, today: date, may_act: MayAct = _anyone) -> TravelClaim:
    rejected = await uow.claims.get_one(claim_id, may_act)
    registration, city, event = await _claimant(uow, rejected.registration_id)
    domain.check_resubmittable(rejected, await uow.claims.superseding(claim_id))
    await _check_receipts(uow, stay, registration.city_id, registration.delegate_email)
    claim = domain.submit_claim(
        registration, city, event, stay, await _rates(uow, event, stay),
        coe_funded_claims=await uow.claims.using_funded_quota(event.workshop_id, city.city_id), today=today, rejected=rejected,
    )
    return await _record(uow, claim, f"claim {claim_id} was already resubmitted")


async def amend_claim(uow: TravelUnitOfWork, claim_id: UUID, stay: Stay, today: date, may_act: MayAct = _anyone) -> TravelClaim:
    # Locked, so that finance's decision arriving meanwhile is applied after the amendment, not lost.
    claim = await uow.claims.get_one(claim_id, may_act, for_update=True)
    await _check_receipts(uow, stay, claim.city_id, claim.delegate_email)
    event, city = await uow.workshops.get(claim.workshop_id), await uow.cities.get(claim.city_id)
    amended = claim.amend(city, event, stay, await _rates(uow, event, stay), today)
    await uow.claims.save_amended(claim)
    uow.emit(amended)
    await uow.commit()
    return claim


async def upload_receipt(
    uow: TravelUnitOfWork, content: bytes, filename: str | None, *, owner_email: str, city_id: UUID, uploaded_by: str,
    max_bytes: int,
) -> tuple[Receipt, bool]:
    """Keep an uploaded file as the owner's receipt, or give back the one they already uploaded with
    the same bytes. Returns it and whether it is new. Refused (nothing stored) unless PDF, JPEG or PNG."""
    receipt = receipts.new_receipt(content, filename, owner_email=owner_email, city_id=city_id, uploaded_by=uploaded_by,
                                   max_bytes=max_bytes, now=utcnow())
    if existing := await uow.receipts.of_owner(city_id, owner_email, receipt.sha256):
        return existing, False
    uow.receipts.add(receipt)
    uow.audit("ReceiptUploaded", receipt.id, details={
        "sha256": receipt.sha256, "size": receipt.size, "content_type": receipt.content_type, "city_id": str(city_id)})
    try:
        await uow.commit()
    except IntegrityError:  # the same file sent twice at once: the unique key kept the first
        await uow.session.rollback()
        if existing := await uow.receipts.of_owner(city_id, owner_email, receipt.sha256):
            return existing, False
        raise
    return receipt, True


async def claim_expert_visit(
    uow: TravelUnitOfWork,
    city_id: UUID,
    visit_date: date,
    nights: int,
    travellers: int,
    expenses: list[Expense],
    today: date,
) -> ExpertVisit:
    city = await uow.cities.get(city_id)
    if city is None:
        # Travel knows cities from membership's facts: one it never heard of may have just applied or joined.
        raise NotYetKnown(f"city {city_id} is not known to travel (yet); if it just joined, retry shortly")
    if existing := await uow.expert_visits.on(city_id, visit_date):
        raise Conflict(f"the expert visit to {city.name} on {visit_date} is already claimed as {existing.id}", code="already_claimed")
    allowance_rate = None
    if nights:
        if city.country is None:
            raise NotYetKnown(f"travel does not know {city.name}'s country yet, so not its allowance rate; retry shortly")
        allowance_rate = await uow.allowance_rates.in_force(city.country, visit_date)
    visit = domain.claim_expert_visit(
        city,
        visit_date=visit_date,
        nights=nights,
        travellers=travellers,
        expenses=expenses,
        allowance_rate=allowance_rate,
        exchange_rates=await _exchange_rates(uow, expenses),
        today=today,
    )
    uow.emit(visit.claimed_event())
    try:
        await uow.expert_visits.insert(visit)
        await uow.commit()
    except IntegrityError as err:
        raise Conflict(f"the expert visit to {city.name} on {visit_date} is already claimed", code="already_claimed") from err
    return visit


async def set_allowance_rate(uow: TravelUnitOfWork, country: str, valid_from: date, eur_per_night: Decimal) -> AllowanceRate:
    before = await uow.allowance_rates.stored(country, valid_from)
    rate = await uow.allowance_rates.put(country, valid_from, eur_per_night)
    # The table keeps the rate in force; the audit trail keeps every value it had, and who set it.
    uow.audit("AllowanceRateSet", f"{country}@{valid_from}", details={
        "country": country, "valid_from": valid_from.isoformat(), "before": _text(before), "after": _text(eur_per_night)})
    await uow.commit()
    return rate


async def set_exchange_rate(uow: TravelUnitOfWork, currency: str, quoted_on: date, units_per_eur: Decimal) -> ExchangeRate:
    domain.refuse_rate_for_eur(currency)
    before = await uow.exchange_rates.stored(currency, quoted_on)
    rate = await uow.exchange_rates.put(currency, quoted_on, units_per_eur)
    uow.audit("ExchangeRateSet", f"{currency}@{quoted_on}", details={
        "currency": currency, "on": quoted_on.isoformat(), "before": _text(before), "after": _text(units_per_eur)})
    await uow.commit()
    return rate


# --- what travel learns from events -------------------------------------------------------


async def on_workshop_scheduled(event: WorkshopScheduled, uow: TravelUnitOfWork) -> None:
    if await uow.workshops.get(event.workshop_id) is None:
        uow.workshops.add(
            StoredEvent(
                event.workshop_id, event.title, event.host_country, event.starts_on, event.ends_on, event.funded_quota_per_city
            )
        )


async def on_workshop_rescheduled(event: WorkshopRescheduled, uow: TravelUnitOfWork) -> None:
    # The claim window and the allowance cap follow the event's current dates.
    if known := await uow.workshops.get(event.workshop_id):
        known.starts_on, known.ends_on = event.starts_on, event.ends_on


async def on_workshop_cancelled(event: WorkshopCancelled, uow: TravelUnitOfWork) -> None:
    if known := await uow.workshops.get(event.workshop_id):
        known.cancelled = True


async def on_delegate_registered(event: DelegateRegistered, uow: TravelUnitOfWork) -> None:
    if await uow.registrations.get(event.registration_id) is None:
        uow.registrations.add(
            StoredRegistration(
                event.registration_id,
                event.workshop_id,
                event.city_id,
                event.delegate_name,
                event.delegate_email,
                event.status,
                event.funded,
            )
        )


# Registration events share the workshop's key with DelegateRegistered, so they never overtake it;
# one for a registration travel never saw carries nothing travel needs.


async def on_registration_cancelled(event: RegistrationCancelled, uow: TravelUnitOfWork) -> None:
    if registration := await uow.registrations.get(event.registration_id):
        registration.status = "cancelled"


async def on_registration_promoted(event: RegistrationPromoted, uow: TravelUnitOfWork) -> None:
    if registration := await uow.registrations.get(event.registration_id):
        registration.status, registration.funded = "registered", event.funded


async def on_registration_funding_changed(event: RegistrationFundingChanged, uow: TravelUnitOfWork) -> None:
    # A claim already submitted keeps the funding it was decided with; only later claims see the
    # change, and they still count the city's claims already funded (see domain.funding_of).
    if registration := await uow.registrations.get(event.registration_id):
        registration.funded = event.funded


# --- what travel learns from finance ------------------------------------------------------


async def _follow(uow: TravelUnitOfWork, claim_id: UUID, decision: Decision) -> None:
    status = await uow.decisions.status(claim_id)
    if status is None:
        # Finance decides only on claims travel published: an unknown id is worth a dead letter, not silence.
        raise NotFound(f"finance decided on claim {claim_id}, which travel does not have")
    if domain.takes_decisions(status):
        await uow.decisions.record(claim_id, decision)
    else:
        log.warning(
            "decision after payment ignored", extra={"claim_id": str(claim_id), "decision": decision.status}
        )


async def on_reimbursement_approved(event: ReimbursementApproved, uow: TravelUnitOfWork) -> None:
    await _follow(uow, event.claim_id, Decision(ClaimStatus.APPROVED, utcnow(), amount=event.amount))


async def on_reimbursement_held(event: ReimbursementHeld, uow: TravelUnitOfWork) -> None:
    await _follow(uow, event.claim_id, Decision(ClaimStatus.HELD, utcnow(), amount=event.amount, reason=event.reason))


async def on_reimbursement_paid(event: ReimbursementPaid, uow: TravelUnitOfWork) -> None:
    await _follow(uow, event.claim_id, Decision(ClaimStatus.PAID, utcnow(), amount=event.amount, paid_on=event.paid_on))


async def on_reimbursement_rejected(event: ReimbursementRejected, uow: TravelUnitOfWork) -> None:
    await _follow(uow, event.claim_id, Decision(ClaimStatus.REJECTED, utcnow(), reason=event.reason))


HANDLERS = {
    **membership_handlers(StoredCity, lambda uow: uow.cities),
    WorkshopScheduled: on_workshop_scheduled,
    WorkshopRescheduled: on_workshop_rescheduled,
    WorkshopCancelled: on_workshop_cancelled,
    DelegateRegistered: on_delegate_registered,
    RegistrationCancelled: on_registration_cancelled,
    RegistrationPromoted: on_registration_promoted,
    RegistrationFundingChanged: on_registration_funding_changed,
    ReimbursementApproved: on_reimbursement_approved,
    ReimbursementHeld: on_reimbursement_held,
    ReimbursementPaid: on_reimbursement_paid,
    ReimbursementRejected: on_reimbursement_rejected,
}


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)
