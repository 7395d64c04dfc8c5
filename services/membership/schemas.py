"""Membership's request and response models: shape and format only, from the shared field types.
What is allowed (a signature dated in the future, an expert visit without a CoE representative)
is the domain's to say. Every model carries an example for the OpenAPI docs."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.common.fields import Country, Text
from services.membership import index
from services.membership.domain import City, CityStatus, Document, ExpertVisit, SignatureCorrection
from services.membership.handlers import IndexResult
from services.membership.index import QueuePlace

CITY_ID = "6f1c2b0e-8d4a-4c57-9a43-2f0d7c1e5b90"
MAX_POPULATION = 100_000_000  # above the largest city on earth: a typo, and beyond the column


class CityApplication(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Oslo", "country": "NO", "population": 709000, "foreign_born_share": "0.28",
                 "contact": "icc@oslo.kommune.no"}
            ]
        }
    )

    name: Text = Field(max_length=200)
    country: Country = Field(description="ISO 3166-1 alpha-2 code, e.g. NO (XK for Kosovo)")
    population: int = Field(gt=0, le=MAX_POPULATION)
    foreign_born_share: Decimal | None = Field(
        default=None, ge=0, le=1, decimal_places=4, allow_inf_nan=False,
        description="share of foreign-born residents, 0 to 1, at most four decimals",
    )
    contact: Text | None = Field(default=None, max_length=300, description="who to write to at the city (optional)")


class Signature(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"signed_on": "2026-02-01"}]})

    signed_on: date = Field(description="not in the future")


class SignatureCorrectionIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"document": "financial_agreement", "signed_on": "2026-03-05", "reason": "typed 2026-05-03 instead of 2026-03-05"}]})

    document: Document = Field(description="which signature was mistyped")
    signed_on: date = Field(description="the date it was really signed (not in the future)")
    reason: Text = Field(max_length=300, description="why it is corrected: kept with the correction and passed on")


class SignatureCorrectionView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "5a0f3c1e-2b4d-4f6a-8c9e-1d2f3a4b5c6d", "document": "financial_agreement", "previous_signed_on": "2026-05-03",
         "signed_on": "2026-03-05", "reason": "typed 2026-05-03 instead of 2026-03-05", "corrected_on": "2026-06-01"}]})

    id: UUID
    document: Document
    previous_signed_on: date
    signed_on: date
    reason: str
    corrected_on: date

    @classmethod
    def of(cls, correction: SignatureCorrection) -> "SignatureCorrectionView":
        return cls(**{name: getattr(correction, name) for name in cls.model_fields})


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
    status: CityStatus = Field(description="member from the join date up to and including the withdrawal's effective date")
    applied_on: date
    statement_signed_on: date | None
    agreement_signed_on: date | None
    joined_on: date | None = Field(description="the later of the two signatures")
    left_on: date | None = Field(description="the withdrawal's effective date: its last day as a member")
    contact: str | None = None

    @classmethod
    def of(cls, city: City, today: date) -> "CityView":
        derived = {"small_city": city.small_city, "status": city.status_on(today)}
        return cls.model_validate({**{name: getattr(city, name) for name in cls.model_fields if name not in derived}, **derived})

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

class AnalysisRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"analyst": "M. Rossi, ICC secretariat"}]})

    analyst: Text | None = Field(default=None, max_length=200)


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


def area_scores(version: int, score: index.IndexScore, comparison: index.Comparison | None = None) -> list[AreaScore]:
    return [
        AreaScore(
            code=area.code, name=area.name, core=area.core, weight=area.weight, score=score.areas[area.code],
            network_average=comparison.network.area_averages.get(area.code) if comparison else None,
            peers_average=comparison.peers.area_averages.get(area.code) if comparison else None,
        )
        for area in index.questionnaire(version).areas
        if area.code in score.areas
    ]

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

def result_view(result: IndexResult) -> IndexResultView:
    s, c = result.submission, result.comparison
    return IndexResultView(
        submission_id=s.id, city_id=s.city_id, city_name=result.city.name, version=s.version, submitted_at=s.submitted_at,
        analysed_on=s.analysed_on, analyst=s.analyst, overall=result.score.overall,
        areas=area_scores(s.version, result.score, c),
        network=StandingView(rank=c.network.rank, out_of=c.network.out_of, average=c.network.average),
        peers=PeersView(rank=c.peers.rank, out_of=c.peers.out_of, average=c.peers.average,
                        population_band=c.peer_group.population_band, diversity_band=c.peer_group.diversity_band),
    )


# --- expert visits ---------------------------------------------------------------------------------

People = Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=50)]


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

    summary: Text = Field(max_length=20_000, description="the intercultural profile, or its summary")
    url: Text | None = Field(default=None, max_length=500, description="where the full report is published")
    recorded_on: date = Field(description="not before the visit, nor in the future")


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
