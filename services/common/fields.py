"""Field types every service's API shares: shape and format checks only, written once.

Rules about what is allowed (an event in the past, paying a cancelled invoice) are the domain's;
these only say what a well-formed value looks like, so each refusal names the field at fault."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

import pycountry
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from contracts.money import Money, is_plain_decimal
from contracts.reference import is_country_code

# The largest amount any form takes: far above any real claim, invoice or budget line, and well
# inside the integer-cents columns (so a typo of 1E+30 is a 422, never an overflow).
MAX_AMOUNT = Decimal("999999999.99")
RATE_PLACES = 6  # ECB rates have at most 4 decimals; leave room for finer ones
MAX_RATE = Decimal("1000000")  # units of a currency per euro: the weakest currencies are far below


def today() -> date:
    return datetime.now(UTC).date()


def _country(value: str) -> str:
    code = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(code, str) or not is_country_code(code):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. FR, TR, MA; XK for Kosovo)")
    return code


def _currency(value: str) -> str:
    code = value.strip().upper() if isinstance(value, str) else value
    if not isinstance(code, str) or len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. EUR, NOK, TRY)")
    return code


def _not_in_future(value: date) -> date:
    if value > today():
        raise ValueError(f"{value} is in the future")
    return value


def _not_blank(value: str) -> str:
    if "\x00" in value:  # PostgreSQL cannot store it in a text column
        raise ValueError("must not contain a NUL character")
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


def _plain_rate(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("send the rate as a decimal string such as \"11.4500\", not a float")
    if isinstance(value, str) and not is_plain_decimal(value):
        raise ValueError("a rate is a plain decimal such as \"11.4500\" (no exponent, no NaN)")
    return value


def _rate_places(value: Decimal) -> Decimal:
    if value != value.quantize(Decimal(1).scaleb(-RATE_PLACES)):
        raise ValueError(f"a rate has at most {RATE_PLACES} decimal places")
    return value


Country = Annotated[str, AfterValidator(_country), WithJsonSchema({"type": "string", "examples": ["FR"]})]
"""ISO 3166-1 alpha-2, upper-cased (XK accepted for Kosovo)."""

Currency = Annotated[str, AfterValidator(_currency), WithJsonSchema({"type": "string", "examples": ["NOK"]})]
"""ISO 4217, upper-cased."""

PastDate = Annotated[date, AfterValidator(_not_in_future)]
"""A day that has come: today or before (a signature, a payment, an expense)."""

Text = Annotated[str, AfterValidator(_not_blank)]
"""Stripped text that is not blank (nor holds a NUL); give it a max_length with Field where it is declared."""

Amount = Annotated[Money, Field(gt=0, le=MAX_AMOUNT, description="a decimal string with at most two places, more than zero")]
"""Money that must be more than zero (an expense, a payment, an allocation raise)."""

AmountOrZero = Annotated[Money, Field(ge=0, le=MAX_AMOUNT, description="a decimal string with at most two places, zero or more")]

Rate = Annotated[
    Decimal,
    BeforeValidator(_plain_rate),
    Field(gt=0, le=MAX_RATE, allow_inf_nan=False),
    AfterValidator(_rate_places),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d{1,6})?$", "examples": ["11.4500"]}),
]
"""An exchange rate as the ECB quotes it: units of a currency for one euro."""

Email = Annotated[
    str,
    Field(max_length=320),
    AfterValidator(lambda value: _email(value)),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 320}),
]


def _email(value: str) -> str:
    text = value.strip().lower()
    local, at, domain = text.partition("@")
    if not at or not local or "." not in domain.strip(".") or any(c.isspace() for c in text) or "@" in domain:
        raise ValueError(f"{value!r} is not an e-mail address")
    return text
