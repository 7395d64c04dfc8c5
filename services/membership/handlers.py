"""Membership commands: one plain function each, run inside a unit of work."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from services.common.refusals import Conflict, NotFound
from services.membership import domain, index
from services.membership.db import MembershipUnitOfWork
from services.membership.domain import City, Document, ExpertVisit
from services.membership.index import Comparison, IndexScore, IndexSubmission, QueuePlace


async def apply_for_membership(
    uow: MembershipUnitOfWork,
    name: str,
    country: str,
    population: int,
    foreign_born_share: Decimal | None,
    today: date,
    contact: str | None = None,
) -> City:
    city, applied = domain.apply_for_membership(name, country, population, foreign_born_share, today, contact)
    uow.cities.add(city)
    uow.emit(applied)
    await uow.commit()
    return city


async def sign_statement_of_intent(uow: MembershipUnitOfWork, city_id: UUID, signed_on: date, today: date) -> City:
    city = await uow.cities.get(city_id)
    if joined := city.sign_statement_of_intent(signed_on, today):
        uow.emit(joined)
    uow.audit("StatementOfIntentSigned", city_id, details={"signed_on": signed_on.isoformat()})
    await uow.commit()
    return city


async def sign_financial_agreement(uow: MembershipUnitOfWork, city_id: UUID, signed_on: date, today: date) -> City:
    city = await uow.cities.get(city_id)
    if joined := city.sign_financial_agreement(signed_on, today):
        uow.emit(joined)
    uow.audit("FinancialAgreementSigned", city_id, details={"signed_on": signed_on.isoformat()})
    await uow.commit()
    return city


async def correct_signature(
    uow: MembershipUnitOfWork, city_id: UUID, document: Document, signed_on: date, reason: str, today: date
) -> City:
    city = await uow.cities.get(city_id)
    correction, corrected = city.correct_signature(document, signed_on, reason, today)
    uow.cities.add_correction(correction)
    if corrected:
        uow.emit(corrected)
    uow.audit("SignatureCorrected", city_id, details={"document": str(document), "signed_on": signed_on.isoformat(), "reason": reason})
    await uow.commit()
    return city


async def withdraw(uow: MembershipUnitOfWork, city_id: UUID, effective_on: date, today: date) -> City:
    city = await uow.cities.get(city_id)
    uow.emit(city.withdraw(effective_on, today))
    await uow.commit()
    return city


# --- the ICC INDEX ---------------------------------------------------------------------------


async def submit_index_questionnaire(
    uow: MembershipUnitOfWork, city_id: UUID, version: int | None, answers: Mapping[str, str], now: datetime
) -> QueuePlace:
    """Queue a city's answers for analysis; answers that do not fit the questionnaire never get in."""
    city = await uow.cities.get(city_id)
    city.may_submit_index(now.date(), await uow.index.waiting_for(city_id))
    submission = IndexSubmission.submit(city.id, version, answers, now)
    uow.index.add(submission)
    name = city.name  # a failed flush expires every loaded object
    try:
        await uow.session.flush()
    except IntegrityError:  # a concurrent submission from the same city got in first
        raise Conflict(f"{name} already has INDEX answers waiting for analysis", code="answers_waiting") from None
    place = await queue_place(uow, submission.id)
    uow.audit("IndexAnswersSubmitted", city_id, details={"submission_id": str(submission.id)})
    await uow.commit()
    return place


async def analysis_queue(uow: MembershipUnitOfWork) -> list[QueuePlace]:
    return index.analysis_order(await uow.index.waiting())


async def queue_place(uow: MembershipUnitOfWork, submission_id: UUID) -> QueuePlace:
    return next(place for place in await analysis_queue(uow) if place.waiting.submission_id == submission_id)


@dataclass(frozen=True)
class Analysed:
    submission: IndexSubmission
    score: IndexScore


async def analyse_next(uow: MembershipUnitOfWork, on: date, analyst: str | None) -> Analysed:
    """Analyse the submission at the head of the queue: the queue order is the programme's rule, so
    nobody picks one out of turn."""
    queue = await analysis_queue(uow)
    if not queue:
        raise NotFound("the INDEX analysis queue is empty", code="queue_empty")
    submission = await uow.index.get_waiting_for_update(queue[0].waiting.submission_id)
    if submission is None:
        raise Conflict("another analyst has just taken the head of the queue; ask again for the next one", code="taken")
    score = submission.analyse(on, analyst)
    uow.audit("IndexAnalysed", submission.city_id, details={"submission_id": str(submission.id), "overall": str(score.overall)})
    await uow.commit()
    return Analysed(submission, score)


@dataclass(frozen=True)
class IndexResult:
    city: City
    submission: IndexSubmission
    score: IndexScore
    comparison: Comparison


async def index_result(uow: MembershipUnitOfWork, city_id: UUID, today: date) -> IndexResult:
    city = await uow.cities.get(city_id)
    submission = await uow.index.latest_analysed(city_id)
    if submission is None:
        waiting = await uow.index.waiting_for(city_id)
        if waiting is None:
            raise NotFound(f"{city.name} has not submitted the INDEX questionnaire", code="not_submitted")
        place = await queue_place(uow, waiting.id)
        raise NotFound(f"{city.name}'s INDEX answers are not analysed yet: position {place.position} in the analysis queue",
                       code="not_analysed_yet")
    score = submission.score
    me = index.Indexed(city.id, city.population, city.foreign_born_share, score)
    comparison = index.compare(me, await uow.index.network(submission.version, today))
    return IndexResult(city, submission, score, comparison)


# --- expert visits ---------------------------------------------------------------------------


async def schedule_expert_visit(
    uow: MembershipUnitOfWork, city_id: UUID, visit_date: date, experts: list[str], coe_representatives: list[str], today: date
) -> ExpertVisit:
    city = await uow.cities.get(city_id)
    visit = city.schedule_expert_visit(visit_date, experts, coe_representatives, today)
    uow.expert_visits.add(visit)
    uow.audit("ExpertVisitScheduled", city_id, details={"visit_id": str(visit.id), "visit_date": visit_date.isoformat()})
    await uow.commit()
    return visit


async def record_intercultural_profile(
    uow: MembershipUnitOfWork, city_id: UUID, visit_id: UUID, summary: str, url: str | None, recorded_on: date, today: date
) -> ExpertVisit:
    visit = await uow.expert_visits.of(city_id, visit_id)
    visit.record_profile(summary, url, recorded_on, today)
    uow.audit("InterculturalProfileRecorded", city_id, details={"visit_id": str(visit_id)})
    await uow.commit()
    return visit
