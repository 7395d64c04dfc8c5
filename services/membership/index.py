"""The ICC INDEX: the questionnaire kept as data, answers checked against it, area scores, the
overall index, how a city compares with the network and with its peers, and the order in which
the secretariat analyses submissions. Pure rules; the only I/O is reading the packaged
questionnaire files (index_v<version>.json next to this module)."""

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from uuid import UUID, uuid4

from services.common.refusals import Invalid, NotFound

QUESTIONNAIRES = Path(__file__).parent
TENTH = Decimal("0.1")


def _tenths(value: Fraction) -> Decimal:
    """Scores are shown with one decimal, rounded half up, once, at the end."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(TENTH, rounding=ROUND_HALF_UP)


# --- the questionnaire ----------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    code: str
    text: str
    options: Mapping[str, int]  # answer -> points

    @property
    def max_points(self) -> int:
        return max(self.options.values())


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    core: bool  # only core areas enter the overall index
    weight: Decimal | None  # core areas only
    questions: tuple[Question, ...]

    @property
    def max_points(self) -> int:
        return sum(q.max_points for q in self.questions)


class InvalidAnswers(Invalid):
    """The answers do not fit the questionnaire; `problems` maps each question code to what is wrong."""

    def __init__(self, version: int, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__(f"answers do not fit INDEX v{version}: " + "; ".join(f"{q}: {p}" for q, p in problems.items()),
                         code="answers_do_not_fit", field="answers")


@dataclass(frozen=True)
class IndexScore:
    areas: dict[str, Decimal]  # area code -> 0-100; optional areas only when answered
    overall: Decimal  # weighted mean of the core areas

    def as_data(self) -> dict:
        return {"overall": str(self.overall), "areas": {code: str(score) for code, score in self.areas.items()}}

    @classmethod
    def from_data(cls, data: Mapping) -> "IndexScore":
        return cls(areas={code: Decimal(s) for code, s in data["areas"].items()}, overall=Decimal(data["overall"]))


@dataclass(frozen=True)
class Questionnaire:
    version: int
    title: str
    published_on: date
    areas: tuple[Area, ...]

    @property
    def questions(self) -> dict[str, Question]:
        return {q.code: q for area in self.areas for q in area.questions}

    def check(self, answers: Mapping[str, object]) -> None:
        """Refuse answers that do not fit: unknown questions, unknown options, a core question left
        unanswered, an optional area answered only in part."""
        questions = self.questions
        problems: dict[str, str] = {}
        for code, answer in answers.items():
            if code not in questions:
                problems[code] = f"no such question in INDEX v{self.version}"
            elif not isinstance(answer, str) or answer not in questions[code].options:
                problems[code] = f"{answer!r} is not one of: {', '.join(questions[code].options)}"
        for area in self.areas:
            missing = [q.code for q in area.questions if q.code not in answers]
            if area.core:
                for code in missing:
                    problems[code] = f"unanswered: every question of the core area {area.name!r} must be answered"
            elif missing and len(missing) < len(area.questions):
                for code in missing:
                    problems[code] = f"unanswered: the optional area {area.name!r} is answered in full or not at all"
        if problems:
            raise InvalidAnswers(self.version, problems)

    def score(self, answers: Mapping[str, str]) -> IndexScore:
        """Area score = points / maximum x 100; overall = the core areas' scores, weighted."""
        self.check(answers)
        exact: dict[str, Fraction] = {}
        for area in self.areas:
            if all(q.code in answers for q in area.questions):
                points = sum(q.options[answers[q.code]] for q in area.questions)
                exact[area.code] = Fraction(points * 100, area.max_points)
        core = [area for area in self.areas if area.core]
        total_weight = sum(Fraction(area.weight) for area in core)
        overall = sum(Fraction(area.weight) * exact[area.code] for area in core) / total_weight
        return IndexScore(areas={code: _tenths(value) for code, value in exact.items()}, overall=_tenths(overall))


def _read(path: Path) -> Questionnaire:
    data = json.loads(path.read_text(), parse_float=Decimal)  # weights stay exact
    areas = tuple(
        Area(
            code=area["code"],
            name=area["name"],
            core=area["core"],
            weight=Decimal(area["weight"]) if area["core"] else None,
            questions=tuple(Question(q["code"], q["text"], dict(q["options"])) for q in area["questions"]),
        )
        for area in data["areas"]
    )
    questionnaire = Questionnaire(data["version"], data["title"], date.fromisoformat(data["published_on"]), areas)
    _check_definition(questionnaire, path)
    return questionnaire


def _check_definition(questionnaire: Questionnaire, path: Path) -> None:
    # A broken definition must stop the service at start, not surface as a wrong score later.
    codes = [q.code for area in questionnaire.areas for q in area.questions]
    problems = []
    if len(codes) != len(set(codes)):
        problems.append("question codes repeat")
    if not any(area.core for area in questionnaire.areas):
        problems.append("no core area")
    for area in questionnaire.areas:
        if area.core and not (area.weight and area.weight > 0):
            problems.append(f"core area {area.code} needs a positive weight")
        if not area.questions or area.max_points <= 0:
            problems.append(f"area {area.code} has nothing to score")
        if any(points < 0 for q in area.questions for points in q.options.values()):
            problems.append(f"area {area.code} has negative points")
    if problems:
        raise ValueError(f"{path.name}: " + "; ".join(problems))


@cache
def questionnaires() -> dict[int, Questionnaire]:
    found = [_read(path) for path in sorted(QUESTIONNAIRES.glob("index_v*.json"))]
    return {q.version: q for q in found}


def current_version() -> int:
    return max(questionnaires())


def questionnaire(version: int | None = None) -> Questionnaire:
    """A questionnaire by version (default: the newest)."""
    version = current_version() if version is None else version
    try:
        return questionnaires()[version]
    except KeyError:
        raise NotFound(f"no INDEX questionnaire version {version}; known: {sorted(questionnaires())}",
                       code="no_questionnaire_version", field="version") from None


# --- submissions and the analysis queue -----------------------------------------------------


@dataclass(eq=False)
class IndexSubmission:
    """A city's answers, waiting for analysis (analysed_on None) or analysed (result set)."""

    id: UUID
    city_id: UUID
    version: int
    answers: dict[str, str]
    submitted_at: datetime
    number: int | None = None  # arrival order, the tie-break after submitted_at
    analysed_on: date | None = None
    analyst: str | None = None
    result: dict | None = None  # IndexScore.as_data()

    @classmethod
    def submit(cls, city_id: UUID, version: int | None, answers: Mapping[str, str], submitted_at: datetime) -> "IndexSubmission":
        """Answers to questionnaire `version` (default: the newest) that fit it."""
        try:
            answered = questionnaire(version)
        except NotFound as err:
            raise Invalid(str(err), code=err.code, field="version") from None
        answered.check(answers)
        return cls(uuid4(), city_id, answered.version, dict(answers), submitted_at)

    @property
    def score(self) -> IndexScore | None:
        return IndexScore.from_data(self.result) if self.result else None

    def analyse(self, on: date, analyst: str | None) -> IndexScore:
        score = questionnaire(self.version).score(self.answers)
        self.analysed_on, self.analyst, self.result = on, analyst, score.as_data()
        return score


@dataclass(frozen=True)
class Waiting:
    """A submission in the queue, with what the queue order depends on."""

    submission_id: UUID
    city_id: UUID
    city_name: str
    submitted_at: datetime
    number: int
    statement_signed_on: date | None

    @property
    def signed_before_submitting(self) -> bool:
        # "had signed the statement of intent when they submitted": by the signature's date, so a
        # statement recorded late but signed earlier still counts.
        return self.statement_signed_on is not None and self.statement_signed_on <= self.submitted_at.date()


@dataclass(frozen=True)
class QueuePlace:
    position: int
    waiting: Waiting
    reason: str

    @property
    def priority(self) -> bool:
        return self.waiting.signed_before_submitting


def analysis_order(waiting: Iterable[Waiting]) -> list[QueuePlace]:
    """[programme] Cities that had signed the statement of intent when they submitted come first;
    within each class, first submitted, first analysed."""
    ordered = sorted(waiting, key=lambda w: (not w.signed_before_submitting, w.submitted_at, w.number))
    return [QueuePlace(position, w, _why(w)) for position, w in enumerate(ordered, start=1)]


def _why(w: Waiting) -> str:
    submitted = w.submitted_at.date()
    if w.signed_before_submitting:
        return (f"statement of intent signed on {w.statement_signed_on}, before submitting on {submitted}: "
                "among the cities analysed first; first submitted, first analysed")
    if w.statement_signed_on is not None:
        return (f"statement of intent signed on {w.statement_signed_on}, after submitting on {submitted}: "
                "after the cities that had signed when they submitted; first submitted, first analysed")
    return (f"no statement of intent signed when submitting on {submitted}: after the cities that had signed; "
            "first submitted, first analysed")


# --- comparison with the network and with peers ---------------------------------------------

# [rule] "Cities of similar size and diversity": the same population band and the same band of
# foreign-born residents. A city whose foreign-born share is unknown is compared by size only,
# and a city whose share is unknown is nobody else's diversity peer.
POPULATION_BANDS: tuple[tuple[int | None, str], ...] = (
    (100_000, "under 100 000 inhabitants"),
    (200_000, "100 000 to 199 999 inhabitants"),
    (500_000, "200 000 to 499 999 inhabitants"),
    (None, "500 000 inhabitants or more"),
)
DIVERSITY_BANDS: tuple[tuple[Decimal | None, str], ...] = (
    (Decimal("0.10"), "under 10% foreign-born"),
    (Decimal("0.20"), "10% to under 20% foreign-born"),
    (None, "20% foreign-born or more"),
)


def _band(value, bands):
    return next(label for upper, label in bands if upper is None or value < upper)


@dataclass(frozen=True)
class PeerGroup:
    population_band: str
    diversity_band: str | None  # None: the city's share is unknown, peers by size only

    def includes(self, other: "Indexed") -> bool:
        theirs = peer_group(other.population, other.foreign_born_share)
        return theirs.population_band == self.population_band and (
            self.diversity_band is None or theirs.diversity_band == self.diversity_band
        )


def peer_group(population: int, foreign_born_share: Decimal | None) -> PeerGroup:
    diversity = None if foreign_born_share is None else _band(foreign_born_share, DIVERSITY_BANDS)
    return PeerGroup(_band(population, POPULATION_BANDS), diversity)


@dataclass(frozen=True)
class Indexed:
    """A city's latest analysed INDEX with what peer groups depend on."""

    city_id: UUID
    population: int
    foreign_born_share: Decimal | None
    score: IndexScore


@dataclass(frozen=True)
class Standing:
    rank: int  # 1 = best; cities with equal scores share a rank
    out_of: int
    average: Decimal
    area_averages: dict[str, Decimal]


@dataclass(frozen=True)
class Comparison:
    network: Standing
    peer_group: PeerGroup
    peers: Standing


def compare(city: Indexed, network: Sequence[Indexed]) -> Comparison:
    """Rank `city` against the network (the city itself plus `network`) and against its peers."""
    everyone = [city, *(other for other in network if other.city_id != city.city_id)]
    group = peer_group(city.population, city.foreign_born_share)
    peers = [c for c in everyone if c is city or group.includes(c)]
    return Comparison(_standing(city, everyone), group, _standing(city, peers))


def _standing(city: Indexed, group: list[Indexed]) -> Standing:
    rank = 1 + sum(1 for other in group if other.score.overall > city.score.overall)
    areas: dict[str, list[Decimal]] = {}
    for member in group:
        for code, score in member.score.areas.items():
            areas.setdefault(code, []).append(score)
    return Standing(
        rank=rank,
        out_of=len(group),
        average=_mean([member.score.overall for member in group]),
        area_averages={code: _mean(scores) for code, scores in areas.items()},
    )


def _mean(values: list[Decimal]) -> Decimal:
    return _tenths(Fraction(sum(values, Decimal(0))) / len(values))
