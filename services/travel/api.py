"""Travel HTTP API: parse, call a handler, answer. Requests and answers are in schemas.py."""

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import TypeAdapter, ValidationError

from services.common.api import Limit, Offset, today
from services.common.auth import Principal, Scope, require
from services.common.fields import Country, Currency, Email
from services.common.refusals import Invalid, NotFound, NotYours
from services.common.runtime import get_reading_unit_of_work, get_unit_of_work
from services.travel import handlers, receipts
from services.travel.db import TravelUnitOfWork
from services.travel.schemas import (
    AllowanceRateIn,
    AllowanceRateView,
    ClaimQuote,
    ClaimRequest,
    ClaimStatusName,
    ClaimView,
    ExchangeRateIn,
    ExchangeRateView,
    ExpertVisitRequest,
    ExpertVisitView,
    ReceiptView,
    StayIn,
)
from services.travel.uploads import read_upload

router = APIRouter(tags=["travel"])
UoW = Annotated[TravelUnitOfWork, Depends(get_unit_of_work)]
# Routes that only read: a read-only transaction, which on SQLite does not queue for the writer lock.
Reading = Annotated[TravelUnitOfWork, Depends(get_reading_unit_of_work)]
CountryPath = Annotated[Country, Path(description="ISO 3166-1 alpha-2 code of the host country")]
CurrencyPath = Annotated[Currency, Path(description="ISO 4217 code")]

# Claims: a delegate acts for their own, a city coordinator for their city's delegates; finance,
# the secretariat and the auditor read them all.
CLAIMANTS = ("delegate", "city_coordinator")
CLAIM_READERS = ("finance", "secretariat", "auditor", *CLAIMANTS)
Claimant = Annotated[Principal, require(*CLAIMANTS)]
ClaimReader = Annotated[Principal, require(*CLAIM_READERS)]
VisitReader = Annotated[Principal, require("secretariat", "finance", "auditor", "city_coordinator")]


def _may_act(principal: Principal):
    scope = principal.scope()
    return lambda city_id, email: scope.covers(city_id=city_id, email=email)


def _claims_scope(scope: Scope) -> dict:
    """A list's filter for a caller's scope: a coordinator's city, or a delegate's own claims."""
    if scope.everything:
        return {}
    if scope.city_id is not None:
        return {"cities": {scope.city_id}}
    return {"cities": scope.cities or set(), "own_email": scope.email or "\0"}  # no address: nothing


# --- claims -------------------------------------------------------------------------------


@router.post("/claims", status_code=201, summary="A delegate claims travel costs for a registration")
async def submit_claim(request: ClaimRequest, uow: UoW, principal: Claimant) -> ClaimView:
    """Decided at once, line by line, under the funding rule; publishes `TravelClaimed`. For the
    caller's own registration (a delegate) or one of their city's (a coordinator)."""
    async with uow:
        return ClaimView.of(await handlers.submit_claim(uow, request.registration_id, request.stay(), today(), _may_act(principal)))


@router.post("/claims/quote", summary="Price a claim as submitting it would, storing nothing")
async def quote_claim(request: ClaimRequest, uow: Reading, principal: Claimant) -> ClaimQuote:
    """The same body, checks and pricing as `POST /claims`: the lines with their explanations, the
    totals, funded or not; or exactly the refusal submitting would give. Nothing is stored and no
    event is published (a claim submitted later is priced again, with the rates and quota of its day)."""
    async with uow:
        return ClaimQuote.of(await handlers.quote_claim(uow, request.registration_id, request.stay(), today(), _may_act(principal)))


@router.post("/claims/{claim_id}/amendment", summary="Amend a claim finance has not decided yet")
async def amend_claim(claim_id: UUID, request: StayIn, uow: UoW, principal: Claimant) -> ClaimView:
    """The whole stay again (nights, travel days, every line): the claim is priced again under the
    funding it was decided with, goes back to `submitted`, and `TravelClaimAmended` tells finance to
    decide again. Only while the claim is `submitted` or `held`."""
    async with uow:
        return ClaimView.of(await handlers.amend_claim(uow, claim_id, request.stay(), today(), _may_act(principal)))


@router.post("/claims/{claim_id}/resubmission", status_code=201, summary="Resubmit a rejected claim as a new version")
async def resubmit_claim(claim_id: UUID, request: StayIn, uow: UoW, principal: Claimant) -> ClaimView:
    """A new claim (new id, `claim_version` + 1, `supersedes` the rejected one, which is kept),
    decided like any claim; publishes `TravelClaimed`."""
    async with uow:
        return ClaimView.of(await handlers.resubmit_claim(uow, claim_id, request.stay(), today(), _may_act(principal)))


@router.get("/claims/{claim_id}", summary="One claim, its lines explained, and finance's decisions")
async def get_claim(claim_id: UUID, uow: Reading, principal: ClaimReader) -> ClaimView:
    """Another delegate's (another city's) claim answers 404, as one that does not exist."""
    async with uow:
        return ClaimView.of(await uow.claims.shown(claim_id, _may_act(principal)))


@router.get("/claims", summary="Claims: a delegate's own (by email), or all by event, city, status")
async def list_claims(
    uow: Reading,
    principal: ClaimReader,
    delegate_email: str | None = None,
    workshop_id: UUID | None = None,
    city_id: UUID | None = None,
    status: ClaimStatusName | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ClaimView]:
    async with uow:
        claims = await uow.claims.find(
            delegate_email=delegate_email, workshop_id=workshop_id, city_id=city_id, status=status, limit=limit, offset=offset,
            **_claims_scope(principal.scope()),
        )
        return [ClaimView.of(claim) for claim in claims]


# --- receipts -----------------------------------------------------------------------------
# Proof of payment as a file, for a claim's lines (`receipt_id`). Uploaded by the delegate, or by
# their city's coordinator for them; read by them and by finance, the secretariat and the auditor.

RECEIPT_FORM = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "the receipt: PDF, JPEG or PNG (by content)"},
                "delegate_email": {"type": "string", "format": "email",
                                   "description": "whose receipt (a coordinator uploading for a delegate); default: yours"},
                "city_id": {"type": "string", "format": "uuid", "description": "the delegate's city; default: yours"},
            },
        }}},
    },
}
FILE = {"content": {mime: {} for mime in receipts.ACCEPTED}, "description": "the receipt's bytes"}
_email = TypeAdapter(Email)


def _owner(principal: Principal, fields: dict[str, str]) -> tuple[str, UUID]:
    """Whose receipt an upload is: the caller's own, or (a coordinator) one of their city's delegates'."""
    if not fields.get("delegate_email") and not principal.has("delegate"):
        raise Invalid("a coordinator uploads a receipt for one of their city's delegates: name them in delegate_email",
                      code="receipt_owner", field="delegate_email")
    try:
        email = _email.validate_python(fields["delegate_email"]) if fields.get("delegate_email") else principal.email
    except ValidationError:
        raise Invalid("delegate_email is not an e-mail address", code="invalid_email", field="delegate_email") from None
    try:
        city_id = UUID(fields["city_id"]) if fields.get("city_id") else principal.city_id
    except ValueError:
        raise Invalid("city_id is not a UUID", code="invalid_city_id", field="city_id") from None
    if email is None or city_id is None:
        raise Invalid("say whose receipt this is: delegate_email and city_id (your token names no "
                      + ("e-mail address)" if email is None else "city)"), code="receipt_owner", field="delegate_email")
    if not principal.scope().covers(city_id=city_id, email=email):
        raise NotYours("a delegate uploads their own receipts, a coordinator those of their city's delegates",
                       code="not_yours", field="delegate_email")
    return email, city_id


@router.post("/receipts", status_code=201, summary="Upload a receipt (PDF, JPEG or PNG) for one's own claims",
             openapi_extra=RECEIPT_FORM, responses={200: {"model": ReceiptView, "description": "the same file was already uploaded"}})
async def upload_receipt(request: Request, response: Response, uow: UoW, principal: Claimant) -> ReceiptView:
    """multipart/form-data with the file in `file`. Accepted when its content is a PDF, JPEG or PNG
    (whatever its name or declared type), not empty, and at most `RECEIPT_MAX_BYTES` (5 MiB by
    default); else 422 `receipt_type`, `receipt_empty`, `receipt_too_large`, and nothing is kept.
    201 with the receipt's id and SHA-256; the same bytes uploaded again for the same delegate give
    back the receipt already kept (200). A claim's line names it as `receipt_id`."""
    max_bytes = request.app.state.runtime.settings.receipt_max_bytes
    upload = await read_upload(request, file_field="file", max_bytes=max_bytes, too_large=lambda: receipts.too_large(max_bytes))
    email, city_id = _owner(principal, upload.fields)
    async with uow:
        receipt, new = await handlers.upload_receipt(uow, upload.content, upload.filename, owner_email=email, city_id=city_id,
                                                     uploaded_by=principal.username, max_bytes=max_bytes)
        if not new:
            response.status_code = 200
        return ReceiptView.of(receipt)


async def _receipt(uow: TravelUnitOfWork, receipt_id: UUID, principal: Principal, *, with_content: bool = False):
    receipt = await uow.receipts.get(receipt_id, with_content=with_content)
    if receipt is None or not principal.scope().covers(city_id=receipt.city_id, email=receipt.owner_email):
        raise NotFound(f"no receipt with id {receipt_id}", code="no_receipt")
    return receipt


@router.get("/receipts/{receipt_id}", summary="A receipt's file, as a download", response_class=Response, responses={200: FILE})
async def get_receipt(receipt_id: UUID, uow: Reading, principal: ClaimReader) -> Response:
    """The delegate's own, their city's for a coordinator, any for finance, the secretariat and the
    auditor; another's answers 404, as one that does not exist. Always an attachment of an accepted
    type, never rendered by the browser as a page."""
    async with uow:
        receipt = await _receipt(uow, receipt_id, principal, with_content=True)
        content, media_type = receipt.content, receipt.content_type
    media_type = media_type if media_type in receipts.ACCEPTED else "application/octet-stream"
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="receipt-{receipt_id}.{receipts.ACCEPTED.get(media_type, "bin")}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
        "Cache-Control": "private, no-store",
    })


@router.get("/receipts/{receipt_id}/meta", summary="A receipt's type, size, checksum and name")
async def get_receipt_meta(receipt_id: UUID, uow: Reading, principal: ClaimReader) -> ReceiptView:
    async with uow:
        return ReceiptView.of(await _receipt(uow, receipt_id, principal))


# --- expert visits ------------------------------------------------------------------------


@router.post("/expert-visits", status_code=201, summary="Claim an expert visit's costs (recharged to a non-European city)",
             dependencies=[require("secretariat")])
async def claim_expert_visit(request: ExpertVisitRequest, uow: UoW) -> ExpertVisitView:
    async with uow:
        visit = await handlers.claim_expert_visit(
            uow,
            request.city_id,
            request.visit_date,
            request.nights,
            request.travellers,
            [line.expense() for line in request.lines],
            today(),
        )
        return ExpertVisitView.of(visit)


@router.get("/expert-visits/{visit_id}", summary="One expert visit, its lines explained, and finance's decisions")
async def get_expert_visit(visit_id: UUID, uow: Reading, principal: VisitReader) -> ExpertVisitView:
    async with uow:
        visit = await uow.expert_visits.get_one(visit_id)
        if not principal.scope().covers(city_id=visit.city_id):
            raise NotFound(f"no expert visit with id {visit_id}")
        return ExpertVisitView.of(visit)


@router.get("/expert-visits", summary="Expert visits, by city and status")
async def list_expert_visits(
    uow: Reading, principal: VisitReader, city_id: UUID | None = None, status: ClaimStatusName | None = None, limit: Limit = 100,
    offset: Offset = 0,
) -> list[ExpertVisitView]:
    """A city coordinator sees their city's."""
    async with uow:
        visits = await uow.expert_visits.find(city_id=city_id, status=status, limit=limit, offset=offset,
                                              cities=principal.scope().cities)
        return [ExpertVisitView.of(visit) for visit in visits]


# --- rate tables --------------------------------------------------------------------------


@router.put("/allowance-rates/{country}", summary="Set a host country's allowance per night from a date", dependencies=[require("finance")])
async def put_allowance_rate(country: CountryPath, rate: AllowanceRateIn, uow: UoW) -> AllowanceRateView:
    async with uow:
        return AllowanceRateView.of(await handlers.set_allowance_rate(uow, country, rate.valid_from, rate.eur_per_night))


@router.get("/allowance-rates", summary="The allowance rate table", dependencies=[require()])
async def list_allowance_rates(uow: Reading, country: Country | None = None, limit: Limit = 100, offset: Offset = 0) -> list[AllowanceRateView]:
    async with uow:
        return [AllowanceRateView.of(rate) for rate in await uow.allowance_rates.find(country, limit, offset)]


@router.get("/allowance-rates/{country}", summary="The allowance rate in force in a country on a date", dependencies=[require()])
async def allowance_rate_in_force(country: CountryPath, uow: Reading, on: date | None = None) -> AllowanceRateView:
    on = on or today()
    async with uow:
        if (rate := await uow.allowance_rates.in_force(country, on)) is None:
            raise NotFound(f"no daily allowance rate for {country} in force on {on}")
        return AllowanceRateView.of(rate)


@router.put("/exchange-rates/{currency}", summary="Set a currency's rate (units per EUR) on a date", dependencies=[require("finance")])
async def put_exchange_rate(currency: CurrencyPath, rate: ExchangeRateIn, uow: UoW) -> ExchangeRateView:
    async with uow:
        return ExchangeRateView.of(await handlers.set_exchange_rate(uow, currency, rate.on, rate.units_per_eur))


@router.get("/exchange-rates", summary="The exchange rate table", dependencies=[require()])
async def list_exchange_rates(uow: Reading, currency: Currency | None = None, limit: Limit = 100, offset: Offset = 0) -> list[ExchangeRateView]:
    async with uow:
        return [ExchangeRateView.of(rate) for rate in await uow.exchange_rates.find(currency, limit, offset)]


@router.get("/exchange-rates/{currency}", summary="The latest rate of a currency on or before a date", dependencies=[require()])
async def exchange_rate_in_force(currency: CurrencyPath, uow: Reading, on: date | None = None) -> ExchangeRateView:
    on = on or today()
    async with uow:
        if (rate := await uow.exchange_rates.in_force(currency, on)) is None:
            raise NotFound(f"no {currency} exchange rate on or before {on}")
        return ExchangeRateView.of(rate)
