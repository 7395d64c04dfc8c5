"""Membership rules: applying, the two signatures that make a member, leaving. Pure: no I/O."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from uuid import UUID, uuid4

from contracts.events import CityApplied, CityJoined, CityLeft
from contracts.reference import is_coe_member
from services.common.errors import Conflict

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


def apply_for_membership(
    name: str, country: str, population: int, foreign_born_share: Decimal | None, applied_on: date
) -> tuple[City, CityApplied]:
    city = City(
        id=uuid4(),
        name=name,
        country=country,
        population=population,
        foreign_born_share=foreign_born_share,
        european=is_coe_member(country, applied_on),
        applied_on=applied_on,
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
