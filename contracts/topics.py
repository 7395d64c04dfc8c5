"""The topic catalogue. Each topic carries the facts of one kind of aggregate, keyed by its id,
so the facts of one aggregate stay in order; nobody may assume order across topics."""

from enum import StrEnum


class Topic(StrEnum):
    CITIES = "icc.membership.cities"  # key: city_id
    WORKSHOPS = "icc.events.workshops"  # key: workshop_id (registrations too: they share its seats)
    CLAIMS = "icc.travel.claims"  # key: claim_id
    INVOICES = "icc.finance.invoices"  # key: invoice_id (a contribution run: its year; a refund: its city_id)
    REIMBURSEMENTS = "icc.finance.reimbursements"  # key: claim_id
    BUDGETS = "icc.finance.budgets"  # key: year


PARTITIONS = 3


def dead_letter_topic(service: str) -> str:
    """Where a service's consumers park the messages they cannot process, with the reason."""
    return f"icc.{service}.dead-letter"
