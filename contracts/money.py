"""Money: exact Decimal euros, serialised as a two-place decimal string ("5000.00")."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> Decimal:
    """Round half up to the cent: the one rounding rule wherever a rule produces fractions."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


LARGEST = Decimal("1E15")  # beyond any amount the platform handles, and safe to quantize to the cent


def is_plain_decimal(text: str) -> bool:
    """Digits with an optional sign and point: "5000.00", "-12.5", never "1E+30", "NaN" or "Infinity"."""
    whole, _, fraction = text.strip().removeprefix("-").removeprefix("+").partition(".")
    return bool(whole or fraction) and (whole + fraction).isascii() and (whole + fraction).isdigit()


def _plain_decimal(value: object) -> object:
    # A float has already lost the cents; an exponent or NaN is no way to write an amount.
    if isinstance(value, float):
        raise ValueError("money must be a decimal string such as \"5000.00\", not a float")
    if isinstance(value, str) and not is_plain_decimal(value):
        raise ValueError("money must be a plain decimal string such as \"5000.00\" (no exponent, no NaN)")
    return value


def _exact_cents(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("money must be a finite amount")
    if abs(value) >= LARGEST:
        raise ValueError("money must be less than 1 000 000 000 000 000")
    if value != value.quantize(CENT):
        raise ValueError("money has at most two decimal places")
    return value.quantize(CENT)


Money = Annotated[
    Decimal,
    BeforeValidator(_plain_decimal),
    AfterValidator(_exact_cents),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["5000.00"]}),
]
"""An amount in EUR with exactly two decimals. Rejects floats and sub-cent amounts."""

EUR = "EUR"
