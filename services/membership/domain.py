"""Membership rules: applying, the two signatures that make a member, leaving, expert visits.
Pure: no I/O. The ICC INDEX rules are in index.py."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from uuid import UUID, uuid4

from contracts.events import CityApplied, CityJoined, CityLeft
from contracts.reference import is_coe_member
from services.common.refusals import Conflict

SMALL_CITY_POPULATION = 30_000  # [programme] below this a city is flagged, never refused


class CityStatus(StrEnum):
    APPLICANT = "applicant"
    MEMBER = "member"
    LEFT = "left"


@dataclass(eq=False)
class City:
    id: UUID
    name: str
    country: str
    population: int
    foreign_born_share: Decimal | None
    european: bool
    applied_on: date
    status: str = CityStatus.APPLICANT
    statement_signed_on: date | None = None
    agreement_signed_on: date | None = None
    joined_on: date | None = None
    left_on: date | None = None
    contact: str | None = None

    @property
    def small_city(self) -> bool:
        return self.population < SMALL_CITY_POPULATION

    def sign_statement_of_intent(self, signed_on: date) -> CityJoined | None:
        if self.statement_signed_on is not None:
            raise Conflict(f"{self.name} signed its statement of intent on {self.statement_signed_on}")
        self._refuse_if_left()
        self.statement_signed_on = signed_on
        return self._join_when_both_signed()

    def sign_financial_agreement(self, signed_on: date) -> CityJoined | None:
        if self.agreement_signed_on is not None:
            raise Conflict(f"{self.name} signed its financial agreement on {self.agreement_signed_on}")
        self._refuse_if_left()
        self.agreement_signed_on = signed_on
        return self._join_when_both_signed()

    def withdraw(self, effective_on: date) -> CityLeft:
        if self.status != CityStatus.MEMBER:
            raise Conflict(f"{self.name} is not a member (status {self.status}); only members can withdraw")
        if self.joined_on and effective_on < self.joined_on:
            raise Conflict(f"withdrawal on {effective_on} would precede joining on {self.joined_on}")
        self.status, self.left_on = CityStatus.LEFT, effective_on
        return CityLeft(city_id=self.id, effective_on=effective_on)

    def may_submit_index(self) -> None:
        """Applicants (ideally first) and members submit the INDEX questionnaire; a city that left does not."""
        if self.status == CityStatus.LEFT:
            raise Conflict(f"{self.name} left the network on {self.left_on}; it cannot submit the INDEX questionnaire")

    def schedule_expert_visit(
        self, visit_date: date, experts: list[str], coe_representatives: list[str]
    ) -> "ExpertVisit":
        if self.status == CityStatus.LEFT:
            raise Conflict(f"{self.name} left the network on {self.left_on}; no expert visit can be scheduled")
        return ExpertVisit.schedule(self.id, visit_date, experts, coe_representatives)

    def _refuse_if_left(self) -> None:
        if self.status == CityStatus.LEFT:
            raise Conflict(f"{self.name} left the network on {self.left_on}; it must apply again")

    def _join_when_both_signed(self) -> CityJoined | None:
        if self.statement_signed_on is None or self.agreement_signed_on is None:
            return None
        # A city is a member once both are signed; it joined on the later signature.
        self.joined_on = max(self.statement_signed_on, self.agreement_signed_on)
        self.status = CityStatus.MEMBER
        self.european = is_coe_member(self.country, self.joined_on)
        return CityJoined(
            city_id=self.id, name=self.name, country=self.country, european=self.european, joined_on=self.joined_on
        )


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
        experts = [name.strip() for name in experts if name.strip()]
        coe_representatives = [name.strip() for name in coe_representatives if name.strip()]
        if not experts or not coe_representatives:
            raise ValueError("an expert visit needs at least one expert and one Council of Europe representative")
        return cls(uuid4(), city_id, visit_date, experts, coe_representatives)

    @property
    def status(self) -> str:
        return "reported" if self.profile_recorded_on else "scheduled"

    def record_profile(self, summary: str, url: str | None, recorded_on: date) -> None:
        if self.profile_recorded_on is not None:
            raise Conflict(f"the intercultural profile of this visit was recorded on {self.profile_recorded_on}")
        if recorded_on < self.visit_date:
            raise Conflict(f"the visit takes place on {self.visit_date}; its report cannot be dated {recorded_on}")
        self.profile_summary, self.profile_url, self.profile_recorded_on = summary, url, recorded_on


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
    )
    return city, applied
