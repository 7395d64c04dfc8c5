"""The topic catalogue. Each topic carries the facts of one kind of aggregate, keyed by its id,
so the facts of one aggregate stay in order; nobody may assume order across topics.

It also says who writes and who reads each topic. That is the platform's access policy: the
broker's ACLs are made from these tables (deploy/kafka/acls.py), and a service whose handlers
would read a topic not listed here for it refuses to start (services/common/runtime.py)."""

from enum import StrEnum


class Topic(StrEnum):
    CITIES = "icc.membership.cities"  # key: city_id
    WORKSHOPS = "icc.events.workshops"  # key: workshop_id (registrations too: they share its seats)
    CLAIMS = "icc.travel.claims"  # key: claim_id
    INVOICES = "icc.finance.invoices"  # key: invoice_id (a contribution run: its year; a refund: its city_id)
    REIMBURSEMENTS = "icc.finance.reimbursements"  # key: claim_id
    BUDGETS = "icc.finance.budgets"  # key: year


# Partitions of every topic: how many consumers of one group can share a topic's load. Adding
# partitions to a topic moves keys to other partitions: the README says how to do it safely.
PARTITIONS = 6

# A service writes only topics named after it (owned_prefix), its dead letters included.
PRODUCES: dict[str, tuple[Topic, ...]] = {
    "membership": (Topic.CITIES,),
    "events": (Topic.WORKSHOPS,),
    "travel": (Topic.CLAIMS,),
    "finance": (Topic.INVOICES, Topic.REIMBURSEMENTS, Topic.BUDGETS),
    "notifications": (),  # mails only (and its dead letters)
}

# The topics each service's consumers subscribe to: exactly the topics of the events its handlers take.
CONSUMES: dict[str, tuple[Topic, ...]] = {
    "membership": (),
    "events": (Topic.CITIES,),
    "travel": (Topic.CITIES, Topic.WORKSHOPS, Topic.REIMBURSEMENTS),
    "finance": (Topic.CITIES, Topic.CLAIMS),
    "notifications": (Topic.CITIES, Topic.WORKSHOPS, Topic.CLAIMS, Topic.INVOICES, Topic.REIMBURSEMENTS, Topic.BUDGETS),
}

SERVICES = tuple(PRODUCES)


def owned_prefix(service: str) -> str:
    """Every topic a service writes starts with this."""
    return f"icc.{service}."


def dead_letter_topic(service: str) -> str:
    """Where a service's consumers park the messages they cannot process, with the reason."""
    return f"{owned_prefix(service)}dead-letter"


def consumer_group(service: str) -> str:
    return f"icc.{service}"
