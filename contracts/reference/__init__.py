"""Reference data every consumer may need: the dated Council of Europe member list and country codes.

"European" on this platform means "a Council of Europe member state on the date that matters",
never geography. The list is data (valid_from / valid_to, both inclusive) so that history stays
answerable: Russia was European until 2022-03-15, Greece left in 1969 and came back in 1974.
"""

import csv
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

import pycountry


@dataclass(frozen=True)
class Membership:
    country: str
    valid_from: date
    valid_to: date | None  # last day as a member, inclusive; None while still a member

    def covers(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on <= self.valid_to)


@cache
def coe_memberships() -> tuple[Membership, ...]:
    text = resources.files(__package__).joinpath("coe_member_states.csv").read_text()
    return tuple(
        Membership(
            country=row["country"],
            valid_from=date.fromisoformat(row["valid_from"]),
            valid_to=date.fromisoformat(row["valid_to"]) if row["valid_to"] else None,
        )
        for row in csv.DictReader(text.splitlines())
    )


def is_coe_member(country: str, on: date) -> bool:
    """Whether `country` (ISO 3166-1 alpha-2) is a Council of Europe member state on `on`."""
    code = country.upper()
    return any(m.country == code and m.covers(on) for m in coe_memberships())


def coe_members_on(on: date) -> frozenset[str]:
    return frozenset(m.country for m in coe_memberships() if m.covers(on))


@cache
def iso_country_codes() -> frozenset[str]:
    # XK (Kosovo) is user-assigned, not ISO, but cities there exist and must be accepted (as non-members).
    return frozenset(c.alpha_2 for c in pycountry.countries) | {"XK"}


def is_country_code(code: str) -> bool:
    return code in iso_country_codes()
