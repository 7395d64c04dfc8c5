"""Membership rules: applying, the two signatures that make a member, correcting a signature date,
leaving, expert visits. Pure: no I/O; "today" is passed in. The ICC INDEX rules are in index.py."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from uuid import UUID, uuid4

from contracts.events import CityApplied, CityJoined, CityLeft, JoinDateCorrected
from contracts.reference import is_coe_member
from services.common.refusals import Conflict, Invalid
from services.membership.index import IndexSubmission

SMALL_CITY_POPULATION = 30_000  # [programme] below this a city is flagged, never refused

Document = Literal["statement_of_intent", "financial_agreement"]
DOCUMENTS: dict[str, str] = {"statement_of_intent": "statement of intent", "financial_agreement": "financial agreement"}


class CityStatus(StrEnum):
    APPLICANT = "applicant"
    MEMBER = "member"
    LEFT = "left"


@dataclass(eq=False)
class SignatureCorrection:
    """A mistyped signature date put right: kept, so the correction is on record, not just an edit."""

    id: UUID
    city_id: UUID
    document: str
    previous_signed_on: date
    signed_on: date
    reason: str
    corrected_on: date
    number: int | None = None  # the order corrections were made in


@dataclass(eq=False)
class City:
    id: UUID
    name: str
    country: str
    population: int
    foreign_born_share: Decimal | None
    european: bool
    applied_on: date
    statement_signed_on: date | None = None
    agreement_signed_on: date | None = None
    joined_on: date | None = None
    left_on: date | None = None  # the withdrawal's effective date: its last day as a member
    contact: str | None = None

    @property
    def small_city(self) -> bool:
        return self.population < SMALL_CITY_POPULATION

    def status_on(self, day: date) -> CityStatus:
        """[rule] A member from its join date up to and including its withdrawal's effective date,
        and not after it."""
        if self.left_on is not None and day > self.left_on:
            return CityStatus.LEFT
        return CityStatus.MEMBER if self.joined_on is not None and self.joined_on <= day else CityStatus.APPLICANT

    def sign_statement_of_intent(self, signed_on: date, today: date) -> CityJoined | None:
        if self.statement_signed_on is not None:
            raise Conflict(f"{self.name} signed its statement of intent on {self.statement_signed_on}", code="already_signed")
        self._may_sign(signed_on, today)
        self.statement_signed_on = signed_on
        return self._join_when_both_signed()

    def sign_financial_agreement(self, signed_on: date, today: date) -> CityJoined | None:
        if self.agreement_signed_on is not None:
            raise Conflict(f"{self.name} signed its financial agreement on {self.agreement_signed_on}", code="already_signed")
        self._may_sign(signed_on, today)
        self.agreement_signed_on = signed_on
        return self._join_when_both_signed()

    def correct_signature(
        self, document: Document, signed_on: date, reason: str, today: date
    ) -> tuple[SignatureCorrection, JoinDateCorrected | None]:
        """The secretariat corrects a member's mistyped signature date: the join date (the later
        signature) and `european` on it are derived again; consumers hear of it when it moves."""
        if self.joined_on is None:
            raise Conflict(f"{self.name} is an applicant: there is no join date to correct; record the signature "
                           "(or sign again) instead", code="not_a_member")
        _not_in_future(signed_on, today)
        previous = self.statement_signed_on if document == "statement_of_intent" else self.agreement_signed_on
        if signed_on == previous:
            raise Conflict(f"{self.name}'s {DOCUMENTS[document]} is already dated {signed_on}: nothing to correct",
                           code="nothing_to_correct", field="signed_on")
        statement, agreement = self.statement_signed_on, self.agreement_signed_on
        if document == "statement_of_intent":
            statement = signed_on
        else:
            agreement = signed_on
        joined_on = max(statement, agreement)
        if self.left_on is not None and joined_on > self.left_on:
            raise Conflict(f"{self.name} would join on {joined_on}, after its withdrawal took effect ({self.left_on}): "
                           "it would never have been a member", code="would_not_be_a_member", field="signed_on")
        correction = SignatureCorrection(uuid4(), self.id, document, previous, signed_on, reason, today)
        self.statement_signed_on, self.agreement_signed_on = statement, agreement
        if joined_on == self.joined_on:
            return correction, None
        previous_joined_on, self.joined_on = self.joined_on, joined_on
        self.european = is_coe_member(self.country, joined_on)
        return correction, JoinDateCorrected(city_id=self.id, joined_on=joined_on, previous_joined_on=previous_joined_on,
                                             european=self.european, reason=reason)

    def withdraw(self, effective_on: date, today: date) -> CityLeft:
        """A member leaves; it stays a member up to and including `effective_on`."""
        status = self.status_on(today)
        if status != CityStatus.MEMBER:
            raise Conflict(f"{self.name} is not a member (status {status}); only members can withdraw", code="not_a_member")
        if self.left_on is not None:
            raise Conflict(f"{self.name} already withdraws, effective {self.left_on}", code="already_withdrawing")
        if effective_on < self.joined_on:
            raise Conflict(f"withdrawal on {effective_on} would precede joining on {self.joined_on}",
                           code="before_joining", field="effective_on")
        self.left_on = effective_on
        return CityLeft(city_id=self.id, effective_on=effective_on)

    def may_submit_index(self, today: date, waiting: IndexSubmission | None) -> None:
        """Applicants (ideally first) and members submit the INDEX questionnaire, one submission
        waiting for analysis at a time; a city that left does not."""
        if self.status_on(today) == CityStatus.LEFT:
            raise Conflict(f"{self.name} left the network on {self.left_on}; it cannot submit the INDEX questionnaire",
                           code="city_left")
        if waiting is not None:
            raise Conflict(
                f"{self.name} already has INDEX answers waiting for analysis (submitted {waiting.submitted_at:%Y-%m-%d}); "
                "it can submit again once they are analysed", code="answers_waiting",
            )

    def schedule_expert_visit(
        self, visit_date: date, experts: list[str], coe_representatives: list[str], today: date
    ) -> "ExpertVisit":
        if self.status_on(today) == CityStatus.LEFT:
            raise Conflict(f"{self.name} left the network on {self.left_on}; no expert visit can be scheduled", code="city_left")
        if self.left_on is not None and visit_date > self.left_on:
            raise Conflict(f"{self.name} leaves the network on {self.left_on}; no expert visit can be scheduled after it",
                           code="after_leaving", field="visit_date")
        return ExpertVisit.schedule(self.id, visit_date, experts, coe_representatives)

    def _may_sign(self, signed_on: date, today: date) -> None:
        if self.status_on(today) == CityStatus.LEFT:
            raise Conflict(f"{self.name} left the network on {self.left_on}; it must apply again", code="city_left")
        _not_in_future(signed_on, today)

    def _join_when_both_signed(self) -> CityJoined | None:
        if self.statement_signed_on is None or self.agreement_signed_on is None:
            return None
        # A city is a member once both are signed; it joined on the later signature.
        self.joined_on = max(self.statement_signed_on, self.agreement_signed_on)
        self.european = is_coe_member(self.country, self.joined_on)
        return CityJoined(
            city_id=self.id, name=self.name, country=self.country, european=self.european, joined_on=self.joined_on
        )


def _not_in_future(signed_on: date, today: date) -> None:
    if signed_on > today:
        raise Invalid(f"a signature cannot be dated in the future ({signed_on})", code="signed_in_the_future", field="signed_on")


@dataclass(eq=False)
class ExpertVisit:
    """[programme] At least one expert and one CoE representative visit the city; their report is
    the city's intercultural profile."""

    id: UUID
    city_id: UUID
    visit_date: date
    experts: list[str] = field(default_factory=list)
    coe_representatives: list[str] = field(default_factory=list)
    profile_summary: str | None = None
    profile_url: str | None = None
    profile_recorded_on: date | None = None

    @classmethod
    def schedule(cls, city_id: UUID, visit_date: date, experts: list[str], coe_representatives: list[str]) -> "ExpertVisit":
        team = {"experts": _names(experts), "coe_representatives": _names(coe_representatives)}
        for role, names in team.items():
            if not names:
                raise Invalid("an expert visit needs at least one expert and one Council of Europe representative",
                              code="team_incomplete", field=role)
        return cls(uuid4(), city_id, visit_date, team["experts"], team["coe_representatives"])

    @property
    def status(self) -> str:
        return "reported" if self.profile_recorded_on else "scheduled"

    def record_profile(self, summary: str, url: str | None, recorded_on: date, today: date) -> None:
        if self.profile_recorded_on is not None:
            raise Conflict(f"the intercultural profile of this visit was recorded on {self.profile_recorded_on}",
                           code="already_recorded")
        if recorded_on > today:
            raise Invalid(f"a report cannot be dated in the future ({recorded_on})", code="dated_in_the_future",
                          field="recorded_on")
        if recorded_on < self.visit_date:
            raise Conflict(f"the visit takes place on {self.visit_date}; its report cannot be dated {recorded_on}",
                           code="before_the_visit", field="recorded_on")
        self.profile_summary, self.profile_url, self.profile_recorded_on = summary, url, recorded_on


def _names(people: list[str]) -> list[str]:
    return [name.strip() for name in people if name.strip()]


def apply_for_membership(
    name: str,
    country: str,
    population: int,
    foreign_born_share: Decimal | None,
    applied_on: date,
    contact: str | None = None,
) -> tuple[City, CityApplied]:
    city = City(
        id=uuid4(),
        name=name,
        country=country,
        population=population,
        foreign_born_share=foreign_born_share,
        european=is_coe_member(country, applied_on),
        applied_on=applied_on,
        contact=contact,
    )
    applied = CityApplied(
        city_id=city.id,
        name=name,
        country=country,
        population=population,
        european=city.european,
        small_city=city.small_city,
        applied_on=applied_on,
        contact=contact,
    )
    return city, applied
