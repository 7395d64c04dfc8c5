"""The finance unit's pages: claims to decide, invoices (payments, credit notes, credit, manual
invoices, contribution runs), the budget, the reconciliation and the rate tables.

Finance acts; the auditor reads the same pages without the forms (the services refuse an auditor's
write anyway). Documents (PDF, CSV, receipts) are fetched with the person's token and handed on
as downloads, so a browser never needs a token of its own."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.common.api import today
from services.common.auth import Principal, page
from services.portal import i18n
from services.portal.i18n import _
from services.portal.web import Api, Refused, ServiceUnavailable, done, menu_item, render

router = APIRouter(prefix="/finance")

Reader = Annotated[Principal, page("finance", "auditor")]
Actor = Annotated[Principal, page("finance")]

menu_item("/finance/claims", "Claims to decide", "finance", "auditor")
menu_item("/finance/invoices", "Invoices", "finance", "auditor")
menu_item("/finance/budget", "Budget", "finance", "auditor")
menu_item("/finance/reconciliation", "Reconciliation", "finance", "auditor")
menu_item("/finance/rates", "Rates", "finance", "auditor")

LINES = ("administration", "delegate_travel", "expert_visits", "index_analysis", "events")
CLAIM_STATUSES = ("held", "approved", "submitted", "paid", "rejected")
INVOICE_STATUSES = ("issued", "partly_paid", "overdue", "paid", "cancelled")
PAGE = 50
SCAN = 500  # invoices read per call when the list is filtered by status (the API does not filter it)
Year = Annotated[int | None, Query(ge=2000, le=2100)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def words() -> dict[str, str]:
    """The services' names for lines, statuses and kinds, in the person's language."""
    return {
        "administration": _("Administration"), "delegate_travel": _("Delegate travel"), "expert_visits": _("Expert visits"),
        "index_analysis": _("INDEX analysis"), "events": _("Events"),
        "held": _("Held"), "approved": _("Approved"), "submitted": _("Submitted"), "paid": _("Paid"), "rejected": _("Rejected"),
        "issued": _("Issued"), "partly_paid": _("Partly paid"), "overdue": _("Overdue"), "cancelled": _("Cancelled by credit note"),
        "contribution": _("Contribution"), "expert_visit_recharge": _("Expert visit recharge"),
        "travel": _("Travel claim"), "expert_visit": _("Expert visit"),
        "commitment": _("Commitment"), "spent": _("Spent"), "settled": _("Settled"),
        "transport": _("Transport"), "visa": _("Visa"), "local_transport": _("Local transport"),
        "daily_allowance": _("Daily allowance"),
    }


def show(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    names = words()
    return render(request, template, status=status, words=names, today=today().isoformat(),
                  options=lambda values: [(value, names.get(value, value)) for value in values], **context)


def again(request: Request, template: str, refused: Refused, prefix: str, form: dict[str, str], **context: Any) -> HTMLResponse:
    """The page again, the form as the person filled it and the service's refusal next to its fields.
    A page with several forms names each one's fields `<prefix>.<field>`, so a refusal lands on its own form."""
    errors = {f"{prefix}.{key}" if prefix else key: text for key, text in refused.errors.items()}
    return show(request, template, status=refused.status, refused=refused, errors=errors, form=form, **context)


async def form_of(request: Request) -> dict[str, str]:
    return {key: str(value).strip() for key, value in (await request.form()).items()}


def given(form: dict[str, str], *names: str, prefix: str = "") -> dict[str, str]:
    """The body for the API: the named fields the person filled in the form `prefix` (an empty
    optional field is left out, so the service's default applies)."""
    return {name: form[key] for name in names if form.get(key := f"{prefix}.{name}" if prefix else name)}


def download(response: Any, name: str, media_type: str) -> Response:
    """A service's document handed on as a download (never shown inline by the portal)."""
    return Response(response.content, media_type=media_type,
                    headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "private, no-store"})


async def city_names(api: Api) -> dict[str, str]:
    """Members' names by id for lists and filters; the pages still work (with ids) if membership is away."""
    try:
        return {city["id"]: city["name"] for city in await api.get("membership", "/cities", limit=1000)}
    except (Refused, ServiceUnavailable):
        return {}


# --- claims to decide ------------------------------------------------------------------------------


@router.get("/claims", response_class=HTMLResponse)
async def claims(request: Request, api: Api, principal: Reader, status: str = "", year: Year = None, budget_line: str = "",
                 limit: Limit = PAGE, offset: Offset = 0) -> HTMLResponse:
    """As finance decides them: held ones in the order they will be released (the API's order)."""
    filters = {"status": status if status in CLAIM_STATUSES else "", "year": year or "",
               "budget_line": budget_line if budget_line in LINES else ""}
    found = await api.get("finance", "/reimbursements", **filters, limit=limit, offset=offset)
    return show(request, "finance/claims.html", claims=found, filters=filters, limit=limit, offset=offset,
                statuses=CLAIM_STATUSES, lines=LINES, names=await city_names(api))


async def claim_context(api: Api, claim_id: UUID) -> dict[str, Any]:
    claim = await api.get("finance", f"/reimbursements/{claim_id}")
    # The claim's lines as travel explains them (finance reads every claim there).
    source = "/expert-visits" if claim.get("kind") == "expert_visit" else "/claims"
    try:
        detail = await api.get("travel", f"{source}/{claim_id}")
    except Refused:
        detail = None  # travel does not show it (yet): finance's figures are what is decided
    city = (await city_names(api)).get(claim["city_id"]) if claim.get("city_id") else None
    return {"claim": claim, "detail": detail, "city_name": city or (detail or {}).get("city_name")}


@router.get("/claims/{claim_id}", response_class=HTMLResponse)
async def claim(request: Request, claim_id: UUID, api: Api, principal: Reader) -> HTMLResponse:
    return show(request, "finance/claim.html", **await claim_context(api, claim_id))


async def claim_write(request: Request, api: Api, claim_id: UUID, decision: str, fields: tuple[str, ...], said: str) -> Response:
    form = await form_of(request)
    try:
        await api.post("finance", f"/reimbursements/{claim_id}/{decision}", given(form, *fields, prefix=decision))
    except Refused as refused:
        return again(request, "finance/claim.html", refused, decision, form, **await claim_context(api, claim_id))
    return done(request, said, f"/finance/claims/{claim_id}")


@router.post("/claims/{claim_id}/payment")
async def pay_claim(request: Request, claim_id: UUID, api: Api, principal: Actor) -> Response:
    return await claim_write(request, api, claim_id, "payment", ("paid_on", "amount"), _("The claim is marked paid."))


@router.post("/claims/{claim_id}/rejection")
async def reject_claim(request: Request, claim_id: UUID, api: Api, principal: Actor) -> Response:
    return await claim_write(request, api, claim_id, "rejection", ("reason",), _("The claim is rejected."))


@router.get("/claims/{claim_id}/receipts/{receipt_id}")
async def receipt(claim_id: UUID, receipt_id: UUID, api: Api, principal: Reader) -> Response:
    """A line's receipt, from travel, as a download (travel decides who may see it)."""
    answer = await api.call("travel", "GET", f"/receipts/{receipt_id}")
    media_type = answer.headers.get("content-type", "application/octet-stream").split(";")[0]
    disposition = answer.headers.get("content-disposition", "")
    name = disposition.split('filename="')[-1].rstrip('"') if 'filename="' in disposition else f"receipt-{receipt_id}"
    return download(answer, name, media_type)


# --- invoices --------------------------------------------------------------------------------------

NO_FILTER = {"year": "", "city_id": "", "status": ""}


def _uuid_or_empty(value: str) -> str:
    try:
        return str(UUID(value)) if value else ""
    except ValueError:
        return ""


async def invoices_filtered(api: Api, city_id: str, year: int | None, status: str, limit: int, offset: int) -> list[dict]:
    if not status:
        return await api.get("finance", "/invoices", city_id=city_id, year=year, limit=limit, offset=offset)
    # The API has no status filter: read through the list until this page is full.
    matching: list[dict] = []
    start = 0
    while len(matching) < offset + limit:
        batch = await api.get("finance", "/invoices", city_id=city_id, year=year, limit=SCAN, offset=start)
        matching += [invoice for invoice in batch if invoice["status"] == status]
        if len(batch) < SCAN:
            break
        start += SCAN
    return matching[offset:offset + limit]


async def invoices_context(api: Api, filters: dict[str, Any], limit: int = PAGE, offset: int = 0) -> dict[str, Any]:
    found = await invoices_filtered(api, filters["city_id"], filters["year"] or None, filters["status"], limit, offset)
    names = await city_names(api)
    return {"invoices": found, "filters": filters, "limit": limit, "offset": offset, "statuses": INVOICE_STATUSES, "names": names,
            "cities": sorted(names.items(), key=lambda item: item[1])}


@router.get("/invoices", response_class=HTMLResponse)
async def invoices(request: Request, api: Api, principal: Reader, year: Year = None, city_id: str = "", status: str = "",
                   limit: Limit = PAGE, offset: Offset = 0) -> HTMLResponse:
    filters = {"year": year or "", "city_id": _uuid_or_empty(city_id), "status": status if status in INVOICE_STATUSES else ""}
    return show(request, "finance/invoices.html", **await invoices_context(api, filters, limit, offset))


@router.post("/invoices")
async def invoice_by_hand(request: Request, api: Api, principal: Actor) -> Response:
    form = await form_of(request)
    try:
        invoice = await api.post("finance", "/invoices", given(form, "city_id", "year", "reason", prefix="manual"))
    except Refused as refused:
        return again(request, "finance/invoices.html", refused, "manual", form, **await invoices_context(api, NO_FILTER))
    return done(request, _("Invoice %(number)s issued.") % {"number": invoice["number"] or invoice["id"]}, f"/finance/invoices/{invoice['id']}")


@router.post("/contribution-runs")
async def contribution_run(request: Request, api: Api, principal: Actor) -> Response:
    form = await form_of(request)
    try:
        run = await api.post("finance", "/contribution-runs", given(form, "year", prefix="run"))
    except Refused as refused:
        return again(request, "finance/invoices.html", refused, "run", form, **await invoices_context(api, NO_FILTER))
    return done(request, _("Contributions for %(year)s: %(issued)s invoices issued, %(already)s already invoiced.")
                % {"year": run["year"], "issued": run["issued"], "already": run["already_invoiced"]},
                f"/finance/invoices?year={run['year']}")


@router.get("/invoices/{invoice_id}.pdf")
async def invoice_pdf(invoice_id: UUID, api: Api, principal: Reader) -> Response:
    answer = await api.call("finance", "GET", f"/invoices/{invoice_id}.pdf", params={"lang": i18n.language.get()})
    return download(answer, f"invoice-{invoice_id}.pdf", "application/pdf")


@router.get("/credit-notes/{credit_note_id}.pdf")
async def credit_note_pdf(credit_note_id: UUID, api: Api, principal: Reader) -> Response:
    answer = await api.call("finance", "GET", f"/credit-notes/{credit_note_id}.pdf", params={"lang": i18n.language.get()})
    return download(answer, f"credit-note-{credit_note_id}.pdf", "application/pdf")


async def invoice_context(api: Api, invoice_id: UUID) -> dict[str, Any]:
    invoice = await api.get("finance", f"/invoices/{invoice_id}")
    payments = await api.get("finance", f"/invoices/{invoice_id}/payments")
    notes = await api.get("finance", f"/invoices/{invoice_id}/credit-notes")
    credit = next((c["credit"] for c in await api.get("finance", "/credits") if c["city_id"] == invoice["city_id"]), "0.00")
    names = await city_names(api)
    return {"invoice": invoice, "payments": payments, "credit_notes": notes, "credit": credit,
            "city_name": names.get(invoice["city_id"])}


@router.get("/invoices/{invoice_id}", response_class=HTMLResponse)
async def invoice(request: Request, invoice_id: UUID, api: Api, principal: Reader) -> HTMLResponse:
    return show(request, "finance/invoice.html", **await invoice_context(api, invoice_id))


async def invoice_write(request: Request, api: Api, invoice_id: UUID, path: str, fields: tuple[str, ...], prefix: str,
                        said: str) -> Response:
    form = await form_of(request)
    try:
        await api.post("finance", path, given(form, *fields, prefix=prefix))
    except Refused as refused:
        return again(request, "finance/invoice.html", refused, prefix, form, **await invoice_context(api, invoice_id))
    return done(request, said, f"/finance/invoices/{invoice_id}")


@router.post("/invoices/{invoice_id}/payments")
async def record_payment(request: Request, invoice_id: UUID, api: Api, principal: Actor) -> Response:
    return await invoice_write(request, api, invoice_id, f"/invoices/{invoice_id}/payments", ("amount", "paid_on", "reference"),
                               "payment", _("Payment recorded."))


@router.post("/invoices/{invoice_id}/credit-notes")
async def record_credit_note(request: Request, invoice_id: UUID, api: Api, principal: Actor) -> Response:
    return await invoice_write(request, api, invoice_id, f"/invoices/{invoice_id}/credit-notes", ("amount", "reason"),
                               "credit_note", _("Credit note issued."))


@router.post("/invoices/{invoice_id}/credit-applications")
async def apply_credit(request: Request, invoice_id: UUID, api: Api, principal: Actor) -> Response:
    return await invoice_write(request, api, invoice_id, f"/invoices/{invoice_id}/credit-applications", ("amount",),
                               "credit", _("Credit applied to the invoice."))


@router.post("/invoices/{invoice_id}/credit-refunds")
async def refund_credit(request: Request, invoice_id: UUID, api: Api, principal: Actor) -> Response:
    """The city's credit paid back to it (the invoice's page shows the credit; the refund is the city's)."""
    city_id = (await api.get("finance", f"/invoices/{invoice_id}"))["city_id"]
    return await invoice_write(request, api, invoice_id, f"/credits/{city_id}/refunds", ("amount", "reference"),
                               "refund", _("Credit refunded to the city."))


@router.post("/invoices/{invoice_id}/payments/{payment_id}/reversal")
async def reverse_payment(request: Request, invoice_id: UUID, payment_id: UUID, api: Api, principal: Actor) -> Response:
    return await invoice_write(request, api, invoice_id, f"/payments/{payment_id}/reversal", ("reason",),
                               f"reversal-{payment_id}", _("Payment reversed."))


async def reallocation_context(api: Api, invoice_id: UUID, payment_id: UUID) -> dict[str, Any]:
    invoice = await api.get("finance", f"/invoices/{invoice_id}")
    payment = next((p for p in await api.get("finance", f"/invoices/{invoice_id}/payments") if p["id"] == str(payment_id)), None)
    if payment is None:
        raise Refused(404, _("Not found, or not yours to see."))
    # The invoices the money may have been meant for: those still asking for some (any city, any year).
    targets, start = [], 0
    while True:
        batch = await api.get("finance", "/invoices", limit=SCAN, offset=start)
        targets += [i for i in batch if i["id"] != invoice["id"] and i["status"] in ("issued", "partly_paid", "overdue")]
        if len(batch) < SCAN:
            break
        start += SCAN
    names = await city_names(api)
    choices = [(t["id"], f'{t["number"] or t["id"][:8]} · {names.get(t["city_id"], t["city_id"][:8])} · {t["year"]} · '
                         f'{i18n.money(t["outstanding"])}') for t in targets]
    return {"invoice": invoice, "payment": payment, "choices": choices}


@router.get("/invoices/{invoice_id}/payments/{payment_id}/reallocation", response_class=HTMLResponse)
async def reallocation(request: Request, invoice_id: UUID, payment_id: UUID, api: Api, principal: Actor) -> HTMLResponse:
    return show(request, "finance/reallocation.html", **await reallocation_context(api, invoice_id, payment_id))


@router.post("/invoices/{invoice_id}/payments/{payment_id}/reallocation")
async def reallocate(request: Request, invoice_id: UUID, payment_id: UUID, api: Api, principal: Actor) -> Response:
    """Money booked on the wrong invoice: reversed here and recorded on the right one, in one step."""
    form = await form_of(request)
    try:
        moved = await api.post("finance", f"/payments/{payment_id}/reallocation",
                               given(form, "invoice_id", "reason", prefix="reallocation"))
    except Refused as refused:
        return again(request, "finance/reallocation.html", refused, "reallocation", form,
                     **await reallocation_context(api, invoice_id, payment_id))
    target = moved["invoice"]
    return done(request, _("Payment moved to invoice %(number)s.") % {"number": target["number"] or target["id"]},
                f"/finance/invoices/{target['id']}")


# --- budget ----------------------------------------------------------------------------------------


def _year_of(form: dict[str, str]) -> int:
    try:
        return min(max(int(form.get("year", "")), 2000), 2100)
    except ValueError:
        return today().year


async def budget_context(api: Api, year: int) -> dict[str, Any]:
    return {"year": year, "budget": await api.get("finance", f"/budgets/{year}"),
            "spending": await api.get("finance", f"/budgets/{year}/spending"), "lines": LINES}


@router.get("/budget", response_class=HTMLResponse)
async def budget(request: Request, api: Api, principal: Reader, year: Year = None) -> HTMLResponse:
    return show(request, "finance/budget.html", **await budget_context(api, year or today().year))


@router.post("/budget")
async def set_budget(request: Request, api: Api, principal: Actor) -> Response:
    form = await form_of(request)
    year = _year_of(form)
    try:
        await api.put("finance", f"/budgets/{year}", {"lines": {line: form.get(f"lines.{line}", "") for line in LINES}})
    except Refused as refused:
        # A rule about one line names the line itself ("below_committed"): its field is lines.<line>.
        refused.errors = {(f"lines.{k}" if k in LINES else k): v for k, v in refused.errors.items()}
        return again(request, "finance/budget.html", refused, "", form, **await budget_context(api, year))
    return done(request, _("Budget for %(year)s set.") % {"year": year}, f"/finance/budget?year={year}")


@router.post("/budget/spending")
async def record_spending(request: Request, api: Api, principal: Actor) -> Response:
    form = await form_of(request)
    year = _year_of(form)
    try:
        await api.post("finance", f"/budgets/{year}/spending", given(form, "budget_line", "kind", "amount", "reference", prefix="spending"))
    except Refused as refused:
        return again(request, "finance/budget.html", refused, "spending", form, **await budget_context(api, year))
    return done(request, _("Spending recorded."), f"/finance/budget?year={year}")


async def spending_write(request: Request, api: Api, spending_id: UUID, action: str, fields: tuple[str, ...], said: str) -> Response:
    """Settling or reversing one entry of the spending table (each row's form is `<action>-<id>`)."""
    form = await form_of(request)
    year = _year_of(form)
    prefix = f"{action}-{spending_id}"
    try:
        await api.post("finance", f"/spending/{spending_id}/{action}", given(form, *fields, prefix=prefix))
    except Refused as refused:
        return again(request, "finance/budget.html", refused, prefix, form, **await budget_context(api, year))
    return done(request, said, f"/finance/budget?year={year}")


@router.post("/spending/{spending_id}/settlement")
async def settle_spending(request: Request, spending_id: UUID, api: Api, principal: Actor) -> Response:
    return await spending_write(request, api, spending_id, "settlement", ("spent",), _("Commitment settled."))


@router.post("/spending/{spending_id}/reversal")
async def reverse_spending(request: Request, spending_id: UUID, api: Api, principal: Actor) -> Response:
    return await spending_write(request, api, spending_id, "reversal", ("reason",), _("Spending reversed."))


# --- reconciliation --------------------------------------------------------------------------------


@router.get("/reconciliation", response_class=HTMLResponse)
async def reconciliation(request: Request, api: Api, principal: Reader, year: Year = None) -> HTMLResponse:
    year = year or today().year
    return show(request, "finance/reconciliation.html", year=year, report=await api.get("finance", f"/reconciliation/{year}"))


@router.get("/reconciliation/{year}.csv")
async def reconciliation_csv(year: Annotated[int, Path(ge=2000, le=2100)], api: Api, principal: Reader) -> Response:
    answer = await api.call("finance", "GET", f"/reconciliation/{year}.csv")
    return download(answer, f"reconciliation-{year}.csv", "text/csv")


# --- rates -----------------------------------------------------------------------------------------


async def rates_context(api: Api, country: str = "", currency: str = "") -> dict[str, Any]:
    return {"allowances": await api.get("travel", "/allowance-rates", country=country, limit=200),
            "exchange": await api.get("travel", "/exchange-rates", currency=currency, limit=200),
            "filters": {"country": country, "currency": currency}}


@router.get("/rates", response_class=HTMLResponse)
async def rates(request: Request, api: Api, principal: Reader, country: str = "", currency: str = "") -> HTMLResponse:
    return show(request, "finance/rates.html", **await rates_context(api, country.strip().upper(), currency.strip().upper()))


@router.post("/rates/allowance")
async def set_allowance_rate(request: Request, api: Api, principal: Actor) -> Response:
    form = await form_of(request)
    country = form.get("allowance.country", "").upper()
    try:
        await api.put("travel", f"/allowance-rates/{quote(country or '-', safe='')}", given(form, "eur_per_night", "valid_from", prefix="allowance"))
    except Refused as refused:
        return again(request, "finance/rates.html", refused, "allowance", form, **await rates_context(api))
    return done(request, _("Allowance rate for %(country)s set.") % {"country": i18n.country(country)}, "/finance/rates")


@router.post("/rates/exchange")
async def set_exchange_rate(request: Request, api: Api, principal: Actor) -> Response:
    form = await form_of(request)
    currency = form.get("exchange.currency", "").upper()
    try:
        await api.put("travel", f"/exchange-rates/{quote(currency or '-', safe='')}", given(form, "units_per_eur", "on", prefix="exchange"))
    except Refused as refused:
        return again(request, "finance/rates.html", refused, "exchange", form, **await rates_context(api))
    return done(request, _("Exchange rate for %(currency)s set.") % {"currency": currency}, "/finance/rates")
