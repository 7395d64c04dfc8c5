"""Typed payloads of the integration events, one model per (type, schema version).

Evolution rule: add optional fields only; never rename or retype. A breaking change is a new
class with `version = 2`, published side by side. Unknown fields are ignored on read so that an
old consumer keeps working when a producer adds a field.
"""

from datetime import date
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from contracts.money import Money
from contracts.topics import Topic

WorkshopKind = Literal["thematic_workshop", "study_visit", "high_level_meeting"]
InvoiceKind = Literal["contribution", "expert_visit_recharge"]
BudgetLine = Literal["administration", "delegate_travel", "expert_visits", "index_analysis", "events"]


class Event(BaseModel):
    """Base of every payload. `type`, `version` and `topic` are class-level facts of the contract."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: ClassVar[str]
    version: ClassVar[int] = 1
    topic: ClassVar[Topic]
    key_field: ClassVar[str]

    registry: ClassVar[dict[tuple[str, int], type["Event"]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.type = cls.__name__
        Event.registry[(cls.type, cls.version)] = cls

    @property
    def key(self) -> str:
        """The aggregate id: the Kafka key, so one aggregate's facts stay in order."""
        return str(getattr(self, self.key_field))


# --- membership ---------------------------------------------------------------------------


class CityApplied(Event):
    topic = Topic.CITIES
    key_field = "city_id"
    city_id: UUID
    name: str
    country: str
    population: int
    european: bool
    small_city: bool
    applied_on: date


class CityJoined(Event):
    """A city became a member. `european` is decided once, here, so no consumer needs the CoE list."""

    topic = Topic.CITIES
    key_field = "city_id"
    city_id: UUID
    name: str
    country: str
    european: bool
    joined_on: date


class CityLeft(Event):
    topic = Topic.CITIES
    key_field = "city_id"
    city_id: UUID
    effective_on: date


# --- events -------------------------------------------------------------------------------


class WorkshopScheduled(Event):
    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    workshop_id: UUID
    title: str
    kind: WorkshopKind
    host_city: str
    host_country: str
    starts_on: date
    ends_on: date
    capacity: int
    funded_quota_per_city: int


class WorkshopCancelled(Event):
    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    workshop_id: UUID


class DelegateRegistered(Event):
    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_email: str
    status: Literal["registered", "waitlisted"]
    funded: bool


# --- travel -------------------------------------------------------------------------------


class TravelClaimed(Event):
    topic = Topic.CLAIMS
    key_field = "claim_id"
    claim_id: UUID
    registration_id: UUID | None = None
    workshop_id: UUID | None = None
    city_id: UUID
    european: bool
    budget_line: BudgetLine
    coe_funded: Money
    city_borne: Money
    submitted_on: date


# --- finance ------------------------------------------------------------------------------


class InvoiceIssued(Event):
    topic = Topic.INVOICES
    key_field = "invoice_id"
    invoice_id: UUID
    city_id: UUID
    kind: InvoiceKind
    year: int
    amount: Money
    issued_on: date
    due_on: date


class PaymentReceived(Event):
    topic = Topic.INVOICES
    key_field = "invoice_id"
    invoice_id: UUID
    city_id: UUID
    amount: Money
    paid_on: date
    reference: str


class ReimbursementApproved(Event):
    topic = Topic.REIMBURSEMENTS
    key_field = "claim_id"
    claim_id: UUID
    amount: Money
    budget_line: BudgetLine
    year: int


class ReimbursementHeld(Event):
    topic = Topic.REIMBURSEMENTS
    key_field = "claim_id"
    claim_id: UUID
    amount: Money
    budget_line: BudgetLine
    year: int
    reason: str
