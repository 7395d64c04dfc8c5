"""Money: exact Decimal euros, serialised as a two-place decimal string ("5000.00")."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")


def to_cents(amount: Decimal) -> Decimal:
    """Round half up to the cent: the one rounding rule wherever a rule produces fractions."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _no_float(value: object) -> object:
    # A float has already lost the cents; make callers send a string or Decimal.
    if isinstance(value, float):
        raise ValueError("money must be a decimal string such as \"5000.00\", not a float")
    return value


def _exact_cents(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("money must be a finite amount")
    if value != value.quantize(CENT):
        raise ValueError("money has at most two decimal places")
    return value.quantize(CENT)


Money = Annotated[
    Decimal,
    BeforeValidator(_no_float),
    AfterValidator(_exact_cents),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["5000.00"]}),
]
"""An amount in EUR with exactly two decimals. Rejects floats and sub-cent amounts."""

EUR = "EUR"
