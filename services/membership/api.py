"""Membership HTTP API: parse, call a handler, answer."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from contracts.reference import is_country_code
from services.common.api import Limit, Offset, today
from services.common.db import utcnow
from services.common.refusals import NotFound
from services.common.runtime import get_unit_of_work
from services.membership import handlers, index
from services.membership.db import MembershipUnitOfWork
from services.membership.domain import City, CityStatus, ExpertVisit
from services.membership.index import InvalidAnswers, QueuePlace

cities_router = APIRouter(tags=["cities"])
index_router = APIRouter(tags=["ICC INDEX"])
visits_router = APIRouter(tags=["expert visits"])
routers = [cities_router, index_router, visits_router]

UoW = Annotated[MembershipUnitOfWork, Depends(get_unit_of_work)]
CITY_ID = "6f1c2b0e-8d4a-4c57-9a43-2f0d7c1e5b90"


def refusal(description: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": {"detail": detail, **extra}}}}


NO_CITY = {404: refusal("no city with this id", f"no city with id {CITY_ID}")}


# --- cities ------------------------------------------------------------------------------------


class CityApplication(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Oslo", "country": "NO", "population": 709000, "foreign_born_share": "0.28",
                 "contact": "icc@oslo.kommune.no"}
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200)
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. NO (XK for Kosovo)")
    population: int = Field(gt=0)
    foreign_born_share: Decimal | None = Field(default=None, ge=0, le=1, description="share of foreign-born residents, 0 to 1")
    contact: str | None = Field(default=None, max_length=300, description="who to write to at the city (optional)")

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name must not be blank")
        return value.strip()

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        code = value.strip().upper()
        if not is_country_code(code):
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. FR, TR, MA)")
        return code


class Signature(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"signed_on": "2026-02-01"}]})

    signed_on: date

    @field_validator("signed_on")
    @classmethod
    def _not_in_future(cls, value: date) -> date:
        if value > today():
            raise ValueError("a signature cannot be dated in the future")
        return value


class Withdrawal(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"effective_on": "2026-12-31"}]})

    effective_on: date = Field(description="the day the withdrawal takes effect (not before the join date)")


class CityView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": CITY_ID, "name": "Oslo", "country": "NO", "population": 709000, "foreign_born_share": "0.28",
                 "european": True, "small_city": False, "status": "member", "applied_on": "2026-01-12",
                 "statement_signed_on": "2026-02-01", "agreement_signed_on": "2026-03-15", "joined_on": "2026-03-15",
                 "left_on": None, "contact": "icc@oslo.kommune.no"}
            ]
        }
    )

    id: UUID
    name: str
    country: str
    population: int
    foreign_born_share: Decimal | None
    european: bool = Field(description="a Council of Europe member state on the date that matters (applying, then joining)")
    small_city: bool = Field(description="under 30 000 inhabitants: flagged, never refused")
    status: CityStatus
    applied_on: date
    statement_signed_on: date | None
    agreement_signed_on: date | None
    joined_on: date | None = Field(description="the later of the two signatures")
    left_on: date | None
    contact: str | None = None

    @classmethod
    def of(cls, city: City) -> "CityView":
        return cls.model_validate(
            {**{name: getattr(city, name) for name in cls.model_fields if name != "small_city"}, "small_city": city.small_city}
        )


@cities_router.post(
    "/cities",
    status_code=201,
    summary="A city applies to join the network",
    responses={422: {"description": "a field breaks a rule (e.g. an unknown country code); nothing is written"}},
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
        return CityView.of(city)


@cities_router.get("/cities/{city_id}", summary="One city and its membership status", responses=NO_CITY)
async def get_city(city_id: UUID, uow: UoW) -> CityView:
    """The city's application, signatures and status: `applicant`, `member` or `left`."""
    async with uow:
        return CityView.of(await uow.cities.get(city_id))


@cities_router.get("/cities", summary="Cities, optionally by status")
async def list_cities(uow: UoW, status: CityStatus | None = None, limit: Limit = 100, offset: Offset = 0) -> list[CityView]:
    """Cities by name; `?status=member` lists the network's members."""
    async with uow:
        return [CityView.of(city) for city in await uow.cities.list(status, limit, offset)]


SIGNING_REFUSED = {
    **NO_CITY,
    409: refusal("already signed, or the city left the network", "Oslo signed its statement of intent on 2026-02-01"),
}


@cities_router.post("/cities/{city_id}/statement-of-intent", summary="Record the signed statement of intent", responses=SIGNING_REFUSED)
async def sign_statement(city_id: UUID, signature: Signature, uow: UoW) -> CityView:
    """When the financial agreement is signed too, the city becomes a member on the later of the
    two dates and `CityJoined` is published. Signing twice is refused."""
    async with uow:
        return CityView.of(await handlers.sign_statement_of_intent(uow, city_id, signature.signed_on))


@cities_router.post("/cities/{city_id}/financial-agreement", summary="Record the signed financial agreement", responses=SIGNING_REFUSED)
async def sign_agreement(city_id: UUID, signature: Signature, uow: UoW) -> CityView:
    """When the statement of intent is signed too, the city becomes a member on the later of the
    two dates and `CityJoined` is published. Signing twice is refused."""
    async with uow:
        return CityView.of(await handlers.sign_financial_agreement(uow, city_id, signature.signed_on))


@cities_router.post(
    "/cities/{city_id}/withdrawal",
    summary="A member leaves the network",
    responses={**NO_CITY, 409: refusal("the city is not a member", "Oslo is not a member (status applicant); only members can withdraw")},
)
async def withdraw(city_id: UUID, withdrawal: Withdrawal, uow: UoW) -> CityView:
    """Status `left`, `CityLeft` published: events stops accepting its delegates, finance stops
    invoicing it (invoices already issued stay due). Only a member can withdraw."""
    async with uow:
        return CityView.of(await handlers.withdraw(uow, city_id, withdrawal.effective_on))


# --- the ICC INDEX -------------------------------------------------------------------------------


class QuestionView(BaseModel):
    code: str
    text: str
    options: dict[str, int] = Field(description="answer -> points")


class AreaView(BaseModel):
    code: str
    name: str
    core: bool = Field(description="core areas enter the overall index; optional ones are scored but not counted")
    weight: Decimal | None
    max_points: int
    questions: list[QuestionView]


class QuestionnaireView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"version": 1, "title": "ICC INDEX questionnaire, version 1", "published_on": "2026-01-01",
                 "areas": [{"code": "commitment", "name": "Commitment", "core": True, "weight": "2", "max_points": 7,
                            "questions": [{"code": "commitment.1", "text": "Has the city council formally adopted ...?",
                                           "options": {"yes": 2, "in_preparation": 1, "no": 0}}]}]}
            ]
        }
    )

    version: int
    title: str
    published_on: date
    areas: list[AreaView]

    @classmethod
    def of(cls, q: index.Questionnaire) -> "QuestionnaireView":
        return cls(
            version=q.version,
            title=q.title,
            published_on=q.published_on,
            areas=[
                AreaView(code=a.code, name=a.name, core=a.core, weight=a.weight, max_points=a.max_points,
                         questions=[QuestionView(code=qq.code, text=qq.text, options=dict(qq.options)) for qq in a.questions])
                for a in q.areas
            ],
        )


@index_router.get(
    "/index-questionnaire",
    summary="The ICC INDEX questionnaire: areas, questions, points, weights",
    responses={404: refusal("no such version", "no INDEX questionnaire version 7; known: [1]")},
)
async def get_questionnaire(version: Annotated[int | None, Query(description="default: the newest")] = None) -> QuestionnaireView:
    """The questionnaire is data (`services/membership/index_v<version>.json`). Answer every
    question of every core area with one of its options; an optional area (participation,
    interaction) is answered in full or left out."""
    try:
        return QuestionnaireView.of(index.questionnaire(version))
    except LookupError as err:
        raise NotFound(str(err)) from err


class IndexAnswers(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"version": 1, "answers": {"commitment.1": "yes", "commitment.2": "yes_without_budget", "commitment.3": "no",
                                           "education.1": "partly", "...": "one answer per question of every core area"}}
            ]
        }
    )

    version: int | None = Field(default=None, description="questionnaire version; default: the newest")
    answers: dict[str, str] = Field(description="question code -> the option chosen")

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int | None) -> int | None:
        if value is not None:
            try:
                index.questionnaire(value)
            except LookupError as err:
                raise ValueError(str(err)) from err
        return value


class QueueEntry(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"position": 1, "submission_id": "0d5c0a4e-77a9-4d0e-8a57-5d3a8e0f4b21", "city_id": CITY_ID, "city_name": "Oslo",
                 "submitted_at": "2026-03-02T09:14:00Z", "statement_signed_on": "2026-02-01", "priority": True,
                 "reason": "statement of intent signed on 2026-02-01, before submitting on 2026-03-02: among the cities "
                           "analysed first; first submitted, first analysed"}
            ]
        }
    )

    position: int
    submission_id: UUID
    city_id: UUID
    city_name: str
    submitted_at: datetime
    statement_signed_on: date | None
    priority: bool = Field(description="the city had signed its statement of intent when it submitted")
    reason: str = Field(description="why the submission stands where it stands")

    @classmethod
    def of(cls, place: QueuePlace) -> "QueueEntry":
        w = place.waiting
        return cls(position=place.position, submission_id=w.submission_id, city_id=w.city_id, city_name=w.city_name,
                   submitted_at=w.submitted_at, statement_signed_on=w.statement_signed_on, priority=place.priority,
                   reason=place.reason)


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
async def submit_index(city_id: UUID, submission: IndexAnswers, uow: UoW) -> QueueEntry:
    """Accepted for analysis (202): the answers are checked against the questionnaire now, scored
    when the secretariat reaches them in the analysis queue. Applicants and members may submit;
    one submission per city waits at a time."""
    version = submission.version or index.current_version()
    try:
        index.questionnaire(version).check(submission.answers)
    except InvalidAnswers as err:
        raise RequestValidationError([
            {"type": "value_error", "loc": ("body", "answers", code), "msg": problem, "input": submission.answers.get(code)}
            for code, problem in err.problems.items()
        ]) from err
    async with uow:
        place = await handlers.submit_index_questionnaire(uow, city_id, version, submission.answers, utcnow())
        return QueueEntry.of(place)


@index_router.get("/index-queue", summary="The INDEX analysis queue, in order, and why")
async def get_index_queue(uow: UoW, limit: Limit = 100, offset: Offset = 0) -> list[QueueEntry]:
    """[programme] Submissions from cities that had signed the statement of intent when they
    submitted come first; within each class, first submitted, first analysed. Each entry says why
    it stands where it stands."""
    async with uow:
        return [QueueEntry.of(place) for place in (await handlers.analysis_queue(uow))[offset : offset + limit]]


class AnalysisRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"analyst": "M. Rossi, ICC secretariat"}]})

    analyst: str | None = Field(default=None, max_length=200)


class AreaScore(BaseModel):
    code: str
    name: str
    core: bool
    weight: Decimal | None
    score: Decimal = Field(description="points / maximum x 100")
    network_average: Decimal | None = None
    peers_average: Decimal | None = None


class AnalysisView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"submission_id": "0d5c0a4e-77a9-4d0e-8a57-5d3a8e0f4b21", "city_id": CITY_ID, "version": 1,
                 "submitted_at": "2026-03-02T09:14:00Z", "analysed_on": "2026-03-20", "analyst": "M. Rossi",
                 "overall": "64.3", "areas": [{"code": "commitment", "name": "Commitment", "core": True, "weight": "2",
                                               "score": "71.4"}]}
            ]
        }
    )

    submission_id: UUID
    city_id: UUID
    version: int
    submitted_at: datetime
    analysed_on: date
    analyst: str | None
    overall: Decimal = Field(description="the weighted mean of the core areas' scores")
    areas: list[AreaScore]


def _area_scores(version: int, score: index.IndexScore, comparison: index.Comparison | None = None) -> list[AreaScore]:
    return [
        AreaScore(
            code=area.code, name=area.name, core=area.core, weight=area.weight, score=score.areas[area.code],
            network_average=comparison.network.area_averages.get(area.code) if comparison else None,
            peers_average=comparison.peers.area_averages.get(area.code) if comparison else None,
        )
        for area in index.questionnaire(version).areas
        if area.code in score.areas
    ]


@index_router.post(
    "/index-queue/analysis",
    summary="Analyse the submission at the head of the queue",
    responses={
        404: refusal("the queue is empty", "the INDEX analysis queue is empty"),
        409: refusal("another analyst took it at the same moment", "another analyst has just taken the head of the queue; "
                     "ask again for the next one"),
    },
)
async def analyse_next(uow: UoW, request: Annotated[AnalysisRequest | None, Body()] = None) -> AnalysisView:
    """Scores the next submission in queue order (never one out of turn): each area 0-100, the
    overall index the weighted mean of the core areas. The city then sees its result at
    `GET /cities/{id}/index-result`."""
    async with uow:
        done = await handlers.analyse_next(uow, today(), request.analyst if request else None)
        s = done.submission
        return AnalysisView(submission_id=s.id, city_id=s.city_id, version=s.version, submitted_at=s.submitted_at,
                            analysed_on=s.analysed_on, analyst=s.analyst, overall=done.score.overall,
                            areas=_area_scores(s.version, done.score))


class StandingView(BaseModel):
    rank: int = Field(description="1 = highest overall index; equal scores share a rank")
    out_of: int
    average: Decimal = Field(description="the group's mean overall index")


class PeersView(StandingView):
    population_band: str
    diversity_band: str | None = Field(description="null: the city's foreign-born share is unknown, peers by size only")


class IndexResultView(AnalysisView):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"submission_id": "0d5c0a4e-77a9-4d0e-8a57-5d3a8e0f4b21", "city_id": CITY_ID, "city_name": "Oslo",
                 "version": 1, "submitted_at": "2026-03-02T09:14:00Z", "analysed_on": "2026-03-20", "analyst": "M. Rossi",
                 "overall": "64.3",
                 "areas": [{"code": "commitment", "name": "Commitment", "core": True, "weight": "2", "score": "71.4",
                            "network_average": "58.0", "peers_average": "66.2"}],
                 "network": {"rank": 12, "out_of": 87, "average": "55.1"},
                 "peers": {"rank": 3, "out_of": 9, "average": "60.4", "population_band": "500 000 inhabitants or more",
                           "diversity_band": "20% foreign-born or more"}}
            ]
        }
    )

    city_name: str
    network: StandingView = Field(description="against every member city's latest result on the same questionnaire version")
    peers: PeersView = Field(description="against member cities of similar size and diversity")


@index_router.get(
    "/cities/{city_id}/index-result",
    summary="The city's latest INDEX result and how it compares",
    responses={404: refusal("no such city, or nothing analysed yet", "Oslo's INDEX answers are not analysed yet: "
                            "position 2 in the analysis queue")},
)
async def get_index_result(city_id: UUID, uow: UoW) -> IndexResultView:
    """Area scores and overall index of the city's latest analysed submission, its rank in the
    network (member cities' latest results) and among its peers (same population band and same
    foreign-born-share band), with the averages to compare each area with."""
    async with uow:
        result = await handlers.index_result(uow, city_id)
        return _result_view(result)


def _result_view(result: handlers.IndexResult) -> IndexResultView:
    s, c = result.submission, result.comparison
    return IndexResultView(
        submission_id=s.id, city_id=s.city_id, city_name=result.city.name, version=s.version, submitted_at=s.submitted_at,
        analysed_on=s.analysed_on, analyst=s.analyst, overall=result.score.overall,
        areas=_area_scores(s.version, result.score, c),
        network=StandingView(rank=c.network.rank, out_of=c.network.out_of, average=c.network.average),
        peers=PeersView(rank=c.peers.rank, out_of=c.peers.out_of, average=c.peers.average,
                        population_band=c.peer_group.population_band, diversity_band=c.peer_group.diversity_band),
    )


# --- expert visits ---------------------------------------------------------------------------------


def _names(values: list[str]) -> list[str]:
    names = [v.strip() for v in values if v.strip()]
    if not names:
        raise ValueError("name at least one person")
    return names


People = Annotated[list[str], Field(min_length=1), AfterValidator(_names)]


class ExpertVisitRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"visit_date": "2026-05-12", "experts": ["Dr A. Okafor"], "coe_representatives": ["I. Novak"]}]
        }
    )

    visit_date: date
    experts: People = Field(description="at least one expert")
    coe_representatives: People = Field(description="at least one Council of Europe representative")


class ProfileRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"summary": "A city with strong commitment and welcoming services; priorities: public space and media.",
                          "url": "https://www.coe.int/en/web/interculturalcities/oslo", "recorded_on": "2026-06-30"}]
        }
    )

    summary: str = Field(min_length=1, max_length=20_000, description="the intercultural profile, or its summary")
    url: str | None = Field(default=None, max_length=500, description="where the full report is published")
    recorded_on: date

    @field_validator("summary")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("summary must not be blank")
        return value.strip()

    @field_validator("recorded_on")
    @classmethod
    def _not_in_future(cls, value: date) -> date:
        if value > today():
            raise ValueError("a report cannot be dated in the future")
        return value


class ProfileView(BaseModel):
    summary: str
    url: str | None
    recorded_on: date


class ExpertVisitView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "1b2e5f9a-3c4d-4e6f-8a9b-0c1d2e3f4a5b", "city_id": CITY_ID, "visit_date": "2026-05-12",
                 "experts": ["Dr A. Okafor"], "coe_representatives": ["I. Novak"], "status": "scheduled",
                 "intercultural_profile": None}
            ]
        }
    )

    id: UUID
    city_id: UUID
    visit_date: date
    experts: list[str]
    coe_representatives: list[str]
    status: str = Field(description="scheduled | reported")
    intercultural_profile: ProfileView | None

    @classmethod
    def of(cls, visit: ExpertVisit) -> "ExpertVisitView":
        profile = None
        if visit.profile_recorded_on:
            profile = ProfileView(summary=visit.profile_summary, url=visit.profile_url, recorded_on=visit.profile_recorded_on)
        return cls(id=visit.id, city_id=visit.city_id, visit_date=visit.visit_date, experts=list(visit.experts),
                   coe_representatives=list(visit.coe_representatives), status=visit.status, intercultural_profile=profile)


@visits_router.post(
    "/cities/{city_id}/expert-visits",
    status_code=201,
    summary="Schedule an expert visit to a city",
    responses={**NO_CITY, 409: refusal("the city left the network", "Oslo left the network on 2026-12-31; no expert visit can be scheduled")},
)
async def schedule_expert_visit(city_id: UUID, request: ExpertVisitRequest, uow: UoW) -> ExpertVisitView:
    """[programme] At least one expert and one Council of Europe representative. The visit's
    costs are claimed in travel (`POST /expert-visits` there)."""
    async with uow:
        visit = await handlers.schedule_expert_visit(uow, city_id, request.visit_date, request.experts, request.coe_representatives)
        return ExpertVisitView.of(visit)


@visits_router.get("/cities/{city_id}/expert-visits", summary="A city's expert visits and intercultural profiles", responses=NO_CITY)
async def list_expert_visits(city_id: UUID, uow: UoW) -> list[ExpertVisitView]:
    """By visit date, each with its intercultural profile once recorded."""
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
)
async def record_profile(city_id: UUID, visit_id: UUID, request: ProfileRequest, uow: UoW) -> ExpertVisitView:
    """Once per visit, dated on or after the visit."""
    async with uow:
        visit = await handlers.record_intercultural_profile(uow, city_id, visit_id, request.summary, request.url, request.recorded_on)
        return ExpertVisitView.of(visit)
