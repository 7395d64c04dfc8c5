"""Membership HTTP API: parse, call a handler, answer. Models are in schemas.py."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query
from fastapi.exceptions import RequestValidationError

from services.common.api import Limit, Offset, today
from services.common.auth import Principal, require
from services.common.refusals import NotFound
from services.common.db import utcnow
from services.common.runtime import get_unit_of_work
from services.membership import handlers, index
from services.membership.db import MembershipUnitOfWork
from services.membership.domain import CityStatus
from services.membership.index import InvalidAnswers
from services.membership.schemas import (
    CITY_ID, AnalysisRequest, AnalysisView, CityApplication, CityView, ExpertVisitRequest, ExpertVisitView, IndexAnswers,
    IndexResultView, ProfileRequest, QueueEntry, QuestionnaireView, Signature, SignatureCorrectionIn,
    SignatureCorrectionView, Withdrawal, area_scores, result_view,
)

cities_router = APIRouter(tags=["cities"])
index_router = APIRouter(tags=["ICC INDEX"])
visits_router = APIRouter(tags=["expert visits"])
routers = [cities_router, index_router, visits_router]

UoW = Annotated[MembershipUnitOfWork, Depends(get_unit_of_work)]


def refusal(description: str, detail: Any, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": {"detail": detail, **extra}}}}


NO_CITY = {404: refusal("no city with this id (or not the caller's to see)", f"no city with id {CITY_ID}", code="no_city")}

# Who reads a city's file: the network's staff, and the city's own coordinator and delegates.
CITY_READERS = ("secretariat", "organiser", "finance", "auditor", "city_coordinator", "delegate")
# A city's signatures and expert visits: the secretariat, finance, the auditor and its coordinator.
CityFileReader = Annotated[Principal, require("secretariat", "finance", "auditor", "city_coordinator")]


def in_scope(principal: Principal, city_id: UUID) -> None:
    """Another city's records answer exactly as a city that does not exist (404): ids reveal nothing."""
    if not principal.scope().covers(city_id=city_id):
        raise NotFound(f"no city with id {city_id}", code="no_city")


# --- cities ------------------------------------------------------------------------------------


@cities_router.post(
    "/cities",
    status_code=201,
    summary="A city applies to join the network",
    responses={422: {"description": "a field breaks a rule (e.g. an unknown country code); nothing is written"}},
    dependencies=[require("secretariat")],
)
async def apply(application: CityApplication, uow: UoW) -> CityView:
    """Record an application. `european` follows the dated Council of Europe member list, never
    geography; a city under 30 000 inhabitants is flagged (`small_city`), never refused.
    Publishes `CityApplied`."""
    async with uow:
        city = await handlers.apply_for_membership(
            uow, application.name, application.country, application.population, application.foreign_born_share, today(),
            application.contact,
        )
        return CityView.of(city, today())


@cities_router.get("/cities/{city_id}", summary="One city and its membership status", responses=NO_CITY)
async def get_city(city_id: UUID, uow: UoW, principal: Annotated[Principal, require(*CITY_READERS)]) -> CityView:
    """The city's application, signatures and status: `applicant`, `member` (from the join date up to
    and including the withdrawal's effective date) or `left` (after it). A coordinator or delegate
    sees their own city only."""
    in_scope(principal, city_id)
    async with uow:
        return CityView.of(await uow.cities.get(city_id), today())


@cities_router.get("/cities", summary="Cities, optionally by status")
async def list_cities(
    uow: UoW, principal: Annotated[Principal, require(*CITY_READERS)], status: CityStatus | None = None,
    limit: Limit = 100, offset: Offset = 0,
) -> list[CityView]:
    """Cities by name; `?status=member` lists the network's members today. A coordinator or
    delegate gets their own city only."""
    async with uow:
        on = today()
        return [CityView.of(city, on) for city in await uow.cities.find(status, on, limit, offset, principal.scope().cities)]


SIGNING_REFUSED = {
    **NO_CITY,
    409: refusal("already signed, or the city left the network", "Oslo signed its statement of intent on 2026-02-01",
                 code="already_signed", retryable=False),
    422: refusal("dated in the future", "a signature cannot be dated in the future (2031-01-01)", code="signed_in_the_future",
                 field="signed_on"),
}


@cities_router.post("/cities/{city_id}/statement-of-intent", summary="Record the signed statement of intent", responses=SIGNING_REFUSED,
                    dependencies=[require("secretariat")])
async def sign_statement(city_id: UUID, signature: Signature, uow: UoW) -> CityView:
    """When the financial agreement is signed too, the city becomes a member on the later of the
    two dates and `CityJoined` is published. Signing twice is refused."""
    async with uow:
        return CityView.of(await handlers.sign_statement_of_intent(uow, city_id, signature.signed_on, today()), today())


@cities_router.post("/cities/{city_id}/financial-agreement", summary="Record the signed financial agreement", responses=SIGNING_REFUSED,
                    dependencies=[require("secretariat")])
async def sign_agreement(city_id: UUID, signature: Signature, uow: UoW) -> CityView:
    """When the statement of intent is signed too, the city becomes a member on the later of the
    two dates and `CityJoined` is published. Signing twice is refused."""
    async with uow:
        return CityView.of(await handlers.sign_financial_agreement(uow, city_id, signature.signed_on, today()), today())


@cities_router.post(
    "/cities/{city_id}/withdrawal",
    summary="A member leaves the network",
    responses={**NO_CITY, 409: refusal("the city is not a member, or already withdraws",
                                       "Oslo is not a member (status applicant); only members can withdraw",
                                       code="not_a_member", retryable=False)},
    dependencies=[require("secretariat")],
)
async def withdraw(city_id: UUID, withdrawal: Withdrawal, uow: UoW) -> CityView:
    """`CityLeft` is published at once; the city stays a member up to and including
    `effective_on` and is `left` after it (every service agrees): events then refuses its
    delegates, finance stops invoicing it (invoices already issued stay due). Only a member can
    withdraw, once."""
    async with uow:
        return CityView.of(await handlers.withdraw(uow, city_id, withdrawal.effective_on, today()), today())


@cities_router.post(
    "/cities/{city_id}/signature-corrections",
    summary="Correct a member's mistyped signature date",
    responses={**NO_CITY, 409: refusal("an applicant, the same date, or a correction that would unmake the member",
                                       "Oslo would join on 2027-01-10, after its withdrawal took effect (2026-12-31): "
                                       "it would never have been a member", code="would_not_be_a_member", retryable=False)},
    dependencies=[require("secretariat")],
)
async def correct_signature(city_id: UUID, correction: SignatureCorrectionIn, uow: UoW) -> CityView:
    """The secretariat puts a mistyped date right, with a reason (kept). The join date (the later
    signature) and `european` on it are derived again; when the join date moves,
    `JoinDateCorrected` is published (finance re-derives the contribution year). An applicant
    has no join date to correct: it signs."""
    async with uow:
        city = await handlers.correct_signature(uow, city_id, correction.document, correction.signed_on, correction.reason,
                                                today())
        return CityView.of(city, today())


@cities_router.get("/cities/{city_id}/signature-corrections", summary="The corrections of a city's signature dates",
                   responses=NO_CITY)
async def list_signature_corrections(
    city_id: UUID, uow: UoW, principal: CityFileReader,
) -> list[SignatureCorrectionView]:
    """Each correction with the date it replaced and its reason, oldest first."""
    in_scope(principal, city_id)
    async with uow:
        await uow.cities.get(city_id)
        return [SignatureCorrectionView.of(c) for c in await uow.cities.corrections(city_id)]


# --- the ICC INDEX -------------------------------------------------------------------------------


@index_router.get(
    "/index-questionnaire",
    summary="The ICC INDEX questionnaire: areas, questions, points, weights",
    responses={404: refusal("no such version", "no INDEX questionnaire version 7; known: [1]", code="no_questionnaire_version")},
    dependencies=[require()],
)
async def get_questionnaire(version: Annotated[int | None, Query(description="default: the newest")] = None) -> QuestionnaireView:
    """The questionnaire is data (`services/membership/index_v<version>.json`). Answer every
    question of every core area with one of its options; an optional area (participation,
    interaction) is answered in full or left out."""
    return QuestionnaireView.of(index.questionnaire(version))


@index_router.post(
    "/cities/{city_id}/index-questionnaire",
    status_code=202,
    summary="Submit the city's INDEX answers for analysis",
    responses={
        **NO_CITY,
        409: refusal("answers already waiting, or the city left", "Oslo already has INDEX answers waiting for analysis "
                     "(submitted 2026-03-02); it can submit again once they are analysed"),
        422: refusal("the answers do not fit the questionnaire; each problem names its question", [
            {"type": "value_error", "loc": ["body", "answers", "commitment.2"], "msg": "'maybe' is not one of: "
             "yes_with_budget, yes_without_budget, no", "input": "maybe"}]),
    },
)
async def submit_index(
    city_id: UUID, submission: IndexAnswers, uow: UoW, principal: Annotated[Principal, require("secretariat", "city_coordinator")],
) -> QueueEntry:
    """Accepted for analysis (202): the answers are checked against the questionnaire now, scored
    when the secretariat reaches them in the analysis queue. Applicants and members may submit;
    one submission per city waits at a time. A city's coordinator submits for their own city."""
    in_scope(principal, city_id)
    async with uow:
        try:
            place = await handlers.submit_index_questionnaire(uow, city_id, submission.version, submission.answers, utcnow())
        except InvalidAnswers as err:  # one error per question, each naming it
            raise RequestValidationError([
                {"type": "value_error", "loc": ("body", "answers", code), "msg": problem, "input": submission.answers.get(code)}
                for code, problem in err.problems.items()
            ]) from err
        return QueueEntry.of(place)


@index_router.get("/index-queue", summary="The INDEX analysis queue, in order, and why", dependencies=[require("secretariat", "auditor")])
async def get_index_queue(uow: UoW, limit: Limit = 100, offset: Offset = 0) -> list[QueueEntry]:
    """[programme] Submissions from cities that had signed the statement of intent when they
    submitted come first; within each class, first submitted, first analysed. Each entry says why
    it stands where it stands."""
    async with uow:
        return [QueueEntry.of(place) for place in (await handlers.analysis_queue(uow))[offset : offset + limit]]


@index_router.post(
    "/index-queue/analysis",
    summary="Analyse the submission at the head of the queue",
    responses={
        404: refusal("the queue is empty", "the INDEX analysis queue is empty"),
        409: refusal("another analyst took it at the same moment", "another analyst has just taken the head of the queue; "
                     "ask again for the next one"),
    },
)
async def analyse_next(
    uow: UoW, principal: Annotated[Principal, require("secretariat")], request: Annotated[AnalysisRequest | None, Body()] = None,
) -> AnalysisView:
    """Scores the next submission in queue order (never one out of turn): each area 0-100, the
    overall index the weighted mean of the core areas. The city then sees its result at
    `GET /cities/{id}/index-result`."""
    async with uow:
        # The analyst is the signed-in person unless the request names another (analysed on paper, say).
        done = await handlers.analyse_next(uow, today(), request.analyst if request and request.analyst else principal.username)
        s = done.submission
        return AnalysisView(submission_id=s.id, city_id=s.city_id, version=s.version, submitted_at=s.submitted_at,
                            analysed_on=s.analysed_on, analyst=s.analyst, overall=done.score.overall,
                            areas=area_scores(s.version, done.score))


@index_router.get(
    "/cities/{city_id}/index-result",
    summary="The city's latest INDEX result and how it compares",
    responses={404: refusal("no such city, or nothing analysed yet", "Oslo's INDEX answers are not analysed yet: "
                            "position 2 in the analysis queue")},
)
async def get_index_result(city_id: UUID, uow: UoW, principal: Annotated[Principal, require(*CITY_READERS)]) -> IndexResultView:
    """Area scores and overall index of the city's latest analysed submission, its rank in the
    network (member cities' latest results) and among its peers (same population band and same
    foreign-born-share band), with the averages to compare each area with."""
    in_scope(principal, city_id)
    async with uow:
        return result_view(await handlers.index_result(uow, city_id, today()))


@visits_router.post(
    "/cities/{city_id}/expert-visits",
    status_code=201,
    summary="Schedule an expert visit to a city",
    responses={**NO_CITY,
               409: refusal("the city left the network", "Oslo left the network on 2026-12-31; no expert visit can be scheduled",
                            code="city_left", retryable=False),
               422: refusal("the team is incomplete", "an expert visit needs at least one expert and one Council of Europe "
                            "representative", code="team_incomplete", field="coe_representatives")},
    dependencies=[require("secretariat")],
)
async def schedule_expert_visit(city_id: UUID, request: ExpertVisitRequest, uow: UoW) -> ExpertVisitView:
    """[programme] At least one expert and one Council of Europe representative. The visit's
    costs are claimed in travel (`POST /expert-visits` there)."""
    async with uow:
        visit = await handlers.schedule_expert_visit(uow, city_id, request.visit_date, request.experts,
                                                     request.coe_representatives, today())
        return ExpertVisitView.of(visit)


@visits_router.get("/cities/{city_id}/expert-visits", summary="A city's expert visits and intercultural profiles", responses=NO_CITY)
async def list_expert_visits(
    city_id: UUID, uow: UoW, principal: CityFileReader,
) -> list[ExpertVisitView]:
    """By visit date, each with its intercultural profile once recorded."""
    in_scope(principal, city_id)
    async with uow:
        await uow.cities.get(city_id)
        return [ExpertVisitView.of(visit) for visit in await uow.expert_visits.of_city(city_id)]


@visits_router.post(
    "/cities/{city_id}/expert-visits/{visit_id}/intercultural-profile",
    summary="Record the visit's report: the city's intercultural profile",
    responses={
        404: refusal("no such visit for this city", f"no expert visit 1b2e5f9a-3c4d-4e6f-8a9b-0c1d2e3f4a5b for city {CITY_ID}"),
        409: refusal("already recorded, or dated before the visit", "the visit takes place on 2026-05-12; its report "
                     "cannot be dated 2026-05-01"),
    },
    dependencies=[require("secretariat")],
)
async def record_profile(city_id: UUID, visit_id: UUID, request: ProfileRequest, uow: UoW) -> ExpertVisitView:
    """Once per visit, dated on or after the visit."""
    async with uow:
        visit = await handlers.record_intercultural_profile(uow, city_id, visit_id, request.summary, request.url,
                                                            request.recorded_on, today())
        return ExpertVisitView.of(visit)
