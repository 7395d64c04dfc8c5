"""The delegate's pages: the events their city may send them to, their registrations, their travel
claims (a new one priced before it is sent, with its receipts as files), finance's decisions.

A city coordinator uses the same pages for their city's delegates: the services scope every list
and refuse what is not theirs; the portal only asks for the delegate's name and address where a
coordinator registers someone else."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
import httpx
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from services.common.api import today
from services.common.auth import Principal, page
from services.portal.i18n import _
from services.portal.web import Api, Refused, ServiceUnavailable, done, menu_item, refused_form, refused_from, render

router = APIRouter()

ROLES = ("delegate", "city_coordinator")
Person = Annotated[Principal, page(*ROLES)]

menu_item("/delegate/events", "Events", *ROLES)
menu_item("/delegate/registrations", "My registrations", *ROLES)
menu_item("/delegate/claims", "My claims", *ROLES)

LINE_ROWS = 4  # expense rows a form offers; empty ones are ignored
MAX_FILES = 20  # receipts in one form: more is not a person filling a claim
FORM_OVERHEAD = 1024 * 1024  # the form's fields beside its files
EXPENSE_KINDS = ("transport", "visa", "local_transport")
CLAIM_STATUSES = ("submitted", "approved", "held", "paid", "rejected")
LINE_FIELDS = ("kind", "amount", "currency", "spent_on", "receipt", "receipt_id", "receipt_name")
# What a browser may be handed as a receipt: travel's allow-list, never anything it would render as a page.
RECEIPT_TYPES = {"application/pdf", "image/jpeg", "image/png"}
# How far back "My registrations" looks: claims come after the event, sometimes months after.
REGISTRATIONS_LOOK_BACK = timedelta(days=400)


def _coordinates(principal: Principal) -> bool:
    return "city_coordinator" in principal.roles


# --- events and registrations --------------------------------------------------------------------


async def _registrations(api: Api, workshops: list[dict]) -> dict[str, list[dict]]:
    """Per event, the person's own registrations (a coordinator: their city's), as events scopes them."""
    answers = await asyncio.gather(*(api.get("events", f"/workshops/{w['id']}/registrations") for w in workshops))
    return {w["id"]: answer for w, answer in zip(workshops, answers)}


@router.get("/delegate/events", response_class=HTMLResponse)
async def events(request: Request, principal: Person, api: Api, limit: int = Query(20, ge=1, le=100),
                 offset: int = Query(0, ge=0)) -> HTMLResponse:
    workshops = await api.get("events", "/workshops", status="scheduled", starting_from=today().isoformat(),
                              limit=limit, offset=offset)
    return render(request, "delegate/events.html", workshops=workshops, registrations=await _registrations(api, workshops),
                  member=await _member(api, principal), limit=limit, offset=offset)


async def _member(api: Api, principal: Principal) -> bool:
    """Whether events counts the person's city a member today (else its delegates cannot register)."""
    if principal.city_id is None:
        return False
    try:
        return bool((await api.get("events", f"/member-cities/{principal.city_id}"))["member"])
    except Refused:
        return False


async def _event_page(principal: Principal, api: Api, workshop_id: UUID) -> dict[str, Any]:
    workshop = await api.get("events", f"/workshops/{workshop_id}")
    mine = await api.get("events", f"/workshops/{workshop_id}/registrations")
    return {"workshop": workshop, "mine": mine, "coordinates": _coordinates(principal)}


@router.get("/delegate/events/{workshop_id}", response_class=HTMLResponse)
async def event(request: Request, workshop_id: UUID, principal: Person, api: Api) -> HTMLResponse:
    context = await _event_page(principal, api, workshop_id)
    return render(request, "delegate/event.html", form={"delegate_name": principal.username}, **context)


@router.post("/delegate/events/{workshop_id}/registrations", response_class=HTMLResponse)
async def register(request: Request, workshop_id: UUID, principal: Person, api: Api) -> Response:
    form = dict(await request.form())
    body = {
        "city_id": str(principal.city_id) if principal.city_id else "",
        "delegate_name": str(form.get("delegate_name") or principal.username),
        # A delegate registers themselves; a coordinator names the delegate.
        "delegate_email": str(form.get("delegate_email") or "") if _coordinates(principal) else (principal.email or ""),
    }
    try:
        registration = await api.post("events", f"/workshops/{workshop_id}/registrations", body)
    except Refused as refused:
        context = await _event_page(principal, api, workshop_id)
        return refused_form(request, "delegate/event.html", refused, form=form, **context)
    if registration["status"] == "waitlisted":
        text = _("The event is full: %(name)s is on the waiting list (position %(position)s).") % {
            "name": registration["delegate_name"], "position": registration["waitlist_position"]}
    else:
        text = _("%(name)s is registered.") % {"name": registration["delegate_name"]}
    return done(request, text, "/delegate/registrations")


@router.post("/delegate/events/{workshop_id}/registrations/{registration_id}/cancellation")
async def cancel_registration(request: Request, workshop_id: UUID, registration_id: UUID, principal: Person, api: Api) -> Response:
    cancelled = await api.delete("events", f"/workshops/{workshop_id}/registrations/{registration_id}")
    return done(request, _("The registration of %(name)s is cancelled.") % {"name": cancelled["delegate_name"]}, "/delegate/registrations")


@router.get("/delegate/registrations", response_class=HTMLResponse)
async def registrations(request: Request, principal: Person, api: Api) -> HTMLResponse:
    workshops = await api.get("events", "/workshops", starting_from=(today() - REGISTRATIONS_LOOK_BACK).isoformat(), limit=100)
    by_event = await _registrations(api, workshops)
    claims = await api.get("travel", "/claims", limit=500)
    # The latest version of a registration's claim (a resubmission supersedes a rejected one).
    claim_of: dict[str, dict] = {}
    for claim in sorted(claims, key=lambda c: c["claim_version"]):
        claim_of[claim["registration_id"]] = claim
    rows = [(w, r) for w in workshops for r in by_event[w["id"]]]
    return render(request, "delegate/registrations.html", rows=rows, claim_of=claim_of)


# --- claims -------------------------------------------------------------------------------------


async def _titles(api: Api, workshop_ids: set[str]) -> dict[str, str]:
    answers = await asyncio.gather(*(api.get("events", f"/workshops/{w}") for w in workshop_ids), return_exceptions=True)
    return {w: a["title"] for w, a in zip(workshop_ids, answers) if isinstance(a, dict)}


@router.get("/delegate/claims", response_class=HTMLResponse)
async def claims(request: Request, principal: Person, api: Api, status: str = "", delegate_email: str = "",
                 limit: int = Query(20, ge=1, le=100), offset: int = Query(0, ge=0)) -> HTMLResponse:
    status = status if status in CLAIM_STATUSES else ""
    delegate_email = delegate_email.strip()
    found = await api.get("travel", "/claims", status=status, delegate_email=delegate_email, limit=limit, offset=offset)
    titles = await _titles(api, {c["workshop_id"] for c in found})
    return render(request, "delegate/claims.html", claims=found, titles=titles, chosen=status, statuses=CLAIM_STATUSES,
                  delegate_email=delegate_email, coordinates=_coordinates(principal), limit=limit, offset=offset)


def _rows(form: dict[str, Any]) -> list[dict[str, Any]]:
    """The expense rows of a posted form, empty ones left out (so the API's `lines[i]` is row i)."""
    by_index: dict[int, dict[str, Any]] = {}
    for key, value in form.items():
        if match := re.fullmatch(r"lines\[(\d+)\]\.(\w+)", key):
            by_index.setdefault(int(match[1]), {})[match[2]] = value
    rows = []
    for _index, row in sorted(by_index.items()):
        upload = row.get("file")
        row["file"] = upload if isinstance(upload, UploadFile) and upload.filename else None
        row.update({name: str(row.get(name) or "").strip() for name in LINE_FIELDS})
        if any(row[name] for name in ("kind", "amount", "spent_on", "receipt", "receipt_id")) or row["file"]:
            rows.append(row)
    return rows


def _stay(form: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The body the API reads, the values as typed: the API says what is wrong with which field."""
    return {
        "nights": str(form.get("nights") or "").strip(),
        "travel_days_without_night": str(form.get("travel_days_without_night") or "0").strip(),
        "lines": [{"kind": row["kind"], "amount": row["amount"], "currency": row["currency"].upper(), "spent_on": row["spent_on"],
                   "receipt": row["receipt"] or None, "receipt_id": row["receipt_id"] or None} for row in rows],
    }


def _form_values(form: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the form shows again: the stay, and the rows renumbered (empty ones dropped)."""
    values = {name: str(form.get(name) or "") for name in ("nights", "travel_days_without_night", "registration_id",
                                                            "workshop_id", "delegate_email", "city_id")}
    for i, row in enumerate(rows):
        values.update({f"lines[{i}].{name}": row[name] for name in LINE_FIELDS})
    return values


def _row_count(rows: list[dict[str, Any]]) -> int:
    return max(LINE_ROWS, len(rows) + 1)


async def _posted(request: Request) -> dict[str, Any]:
    """A claim form, refused before it is read if it cannot be files within the receipt size limit."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > request.app.state.settings.receipt_max_bytes * MAX_FILES + FORM_OVERHEAD:
        raise Refused(413, _("The files sent together are too large."), "too_large")
    return dict(await request.form(max_files=MAX_FILES))


async def _upload_receipts(request: Request, api: Api, form: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, str]:
    """Each new file to travel (after the portal's own size check); its id goes on its row. The
    refusals, by field, next to the line's file field."""
    max_bytes: int = request.app.state.settings.receipt_max_bytes
    errors: dict[str, str] = {}
    for i, row in enumerate(rows):
        upload: UploadFile | None = row["file"]
        if upload is None:
            continue
        field = f"lines[{i}].file"
        if upload.size is not None and upload.size > max_bytes:
            errors[field] = _("The file is too large: at most %(size)s MB.") % {"size": f"{max_bytes / 1024 / 1024:g}"}
            continue
        content = await upload.read()
        if len(content) > max_bytes:
            errors[field] = _("The file is too large: at most %(size)s MB.") % {"size": f"{max_bytes / 1024 / 1024:g}"}
            continue
        owner = {k: str(form[k]) for k in ("delegate_email", "city_id") if form.get(k)}
        try:
            receipt = await api.post("travel", "/receipts", files={"file": (upload.filename, content, upload.content_type
                                                                           or "application/octet-stream")}, data=owner)
        except Refused as refused:
            errors[field] = _receipt_refusal(refused)
            continue
        row.update(receipt_id=receipt["id"], receipt_name=upload.filename or receipt.get("filename") or "")
    return errors


def _receipt_refusal(refused: Refused) -> str:
    if refused.code == "receipt_type":
        return _("This file is not a receipt the platform accepts: send a PDF, JPEG or PNG file.")
    if refused.code == "receipt_too_large":
        return _("The file is too large.")
    if refused.code == "receipt_empty":
        return _("The file is empty.")
    return refused.message


def _line_errors(refused: Refused) -> Refused:
    """A refusal naming a line's receipt shows next to its file field too."""
    for key, message in list(refused.errors.items()):
        if key.endswith(".receipt_id"):
            refused.errors.setdefault(key.removesuffix(".receipt_id") + ".file", message)
    return refused


async def _claim_form_context(api: Api, workshop_id: str, registration_id: str) -> dict[str, Any]:
    workshop = await api.get("events", f"/workshops/{workshop_id}")
    mine = await api.get("events", f"/workshops/{workshop_id}/registrations")
    registration = next((r for r in mine if r["id"] == registration_id), None)
    if registration is None:
        raise Refused(404, _("Not found, or not yours to see."), "not_found")
    return {"workshop": workshop, "registration": registration, "kinds": EXPENSE_KINDS}


@router.get("/delegate/claims/new", response_class=HTMLResponse)
async def new_claim(request: Request, principal: Person, api: Api, workshop_id: UUID, registration_id: UUID) -> HTMLResponse:
    context = await _claim_form_context(api, str(workshop_id), str(registration_id))
    registration = context["registration"]
    form = {"workshop_id": str(workshop_id), "registration_id": str(registration_id), "travel_days_without_night": "0",
            "delegate_email": registration["delegate_email"], "city_id": registration["city_id"]}
    return render(request, "delegate/new_claim.html", form=form, rows=LINE_ROWS, **context)


@router.post("/delegate/claims/form", response_class=HTMLResponse)
async def change_claim(request: Request, principal: Person, api: Api) -> HTMLResponse:
    """Back from the priced claim to the form, as it was filled (receipts already kept stay kept)."""
    form = dict(await request.form())
    rows = _rows(form)
    context = await _claim_form_context(api, str(form.get("workshop_id")), str(form.get("registration_id")))
    return render(request, "delegate/new_claim.html", form=_form_values(form, rows), rows=_row_count(rows), **context)


@router.post("/delegate/claims/quote", response_class=HTMLResponse)
async def quote_claim(request: Request, principal: Person, api: Api) -> HTMLResponse:
    """The receipts first (each to travel), then the claim priced as sending it would, stored nowhere."""
    form = await _posted(request)
    rows = _rows(form)
    context = await _claim_form_context(api, str(form.get("workshop_id")), str(form.get("registration_id")))
    errors = await _upload_receipts(request, api, form, rows)
    if errors:
        refused = Refused(422, _("A receipt was refused: see the line."), "receipt", errors)
        return refused_form(request, "delegate/new_claim.html", refused, form=_form_values(form, rows), rows=_row_count(rows), **context)
    try:
        quote = await api.post("travel", "/claims/quote", {"registration_id": form.get("registration_id"), **_stay(form, rows)})
    except Refused as refused:
        return refused_form(request, "delegate/new_claim.html", _line_errors(refused), form=_form_values(form, rows),
                            rows=_row_count(rows), **context)
    return render(request, "delegate/quote.html", quote=quote, form=_form_values(form, rows), rows=rows, **context)


@router.post("/delegate/claims", response_class=HTMLResponse)
async def send_claim(request: Request, principal: Person, api: Api) -> Response:
    form = dict(await request.form())
    rows = _rows(form)
    try:
        claim = await api.post("travel", "/claims", {"registration_id": form.get("registration_id"), **_stay(form, rows)})
    except Refused as refused:
        context = await _claim_form_context(api, str(form.get("workshop_id")), str(form.get("registration_id")))
        return refused_form(request, "delegate/new_claim.html", _line_errors(refused), form=_form_values(form, rows),
                            rows=_row_count(rows), **context)
    return done(request, _("Your claim is sent to finance."), f"/delegate/claims/{claim['id']}")


def _claim_form(claim: dict) -> dict[str, Any]:
    """An amendment or resubmission starts from the claim as it stands (the allowance is travel's own line)."""
    form = {"nights": str(claim.get("nights", "")), "travel_days_without_night": str(claim.get("travel_days_without_night", 0)),
            "delegate_email": claim["delegate_email"], "city_id": claim["city_id"]}
    expenses = [line for line in claim["lines"] if line["kind"] in EXPENSE_KINDS]
    for i, line in enumerate(expenses):
        form.update({f"lines[{i}].kind": line["kind"], f"lines[{i}].amount": line["amount"], f"lines[{i}].currency": line["currency"],
                     f"lines[{i}].spent_on": line["spent_on"] or "", f"lines[{i}].receipt": line["receipt"] or "",
                     f"lines[{i}].receipt_id": line.get("receipt_id") or "", f"lines[{i}].receipt_name": ""})
    return form


def _rows_in(form: dict[str, Any]) -> int:
    return max(LINE_ROWS, sum(1 for key in form if key.endswith(".kind")) + 1)


async def _claim_page(api: Api, claim_id: UUID) -> dict[str, Any]:
    claim = await api.get("travel", f"/claims/{claim_id}")
    workshop = (await _titles(api, {claim["workshop_id"]})).get(claim["workshop_id"], "")
    return {"claim": claim, "title": workshop, "kinds": EXPENSE_KINDS}


@router.get("/delegate/claims/{claim_id}", response_class=HTMLResponse)
async def claim(request: Request, claim_id: UUID, principal: Person, api: Api) -> HTMLResponse:
    context = await _claim_page(api, claim_id)
    form = _claim_form(context["claim"])
    return render(request, "delegate/claim.html", form=form, rows=_rows_in(form), **context)


async def _restate(request: Request, claim_id: UUID, api: Api, action: str) -> Response:
    """An amendment or a resubmission: the whole stay again, new receipts uploaded first."""
    form = await _posted(request)
    rows = _rows(form)
    errors = await _upload_receipts(request, api, form, rows)
    try:
        if errors:
            raise Refused(422, _("A receipt was refused: see the line."), "receipt", errors)
        claim = await api.post("travel", f"/claims/{claim_id}/{action}", _stay(form, rows))
    except Refused as refused:
        context = await _claim_page(api, claim_id)
        return refused_form(request, "delegate/claim.html", _line_errors(refused), form=_form_values(form, rows),
                            rows=_row_count(rows), **context)
    text = _("Your claim is amended and goes to finance again.") if action == "amendment" \
        else _("Your claim is resubmitted as version %(version)s.") % {"version": claim["claim_version"]}
    return done(request, text, f"/delegate/claims/{claim['id']}")


@router.post("/delegate/claims/{claim_id}/amendment", response_class=HTMLResponse)
async def amend_claim(request: Request, claim_id: UUID, principal: Person, api: Api) -> Response:
    return await _restate(request, claim_id, api, "amendment")


@router.post("/delegate/claims/{claim_id}/resubmission", response_class=HTMLResponse)
async def resubmit_claim(request: Request, claim_id: UUID, principal: Person, api: Api) -> Response:
    return await _restate(request, claim_id, api, "resubmission")


@router.get("/delegate/claims/{claim_id}/receipts/{receipt_id}")
async def receipt(request: Request, claim_id: UUID, receipt_id: UUID, principal: Person, api: Api) -> Response:
    """A line's receipt file, streamed from travel as it keeps it: always a download of an
    allow-listed type, never something a browser would open as a page."""
    claim = await api.get("travel", f"/claims/{claim_id}")
    if str(receipt_id) not in {line.get("receipt_id") for line in claim["lines"]}:
        raise Refused(404, _("Not found, or not yours to see."), "not_found")
    session = await request.app.state.web_sessions.session(request)
    http: httpx.AsyncClient = request.app.state.http
    url = f"{request.app.state.settings.service_url('travel')}/receipts/{receipt_id}"
    try:
        upstream = await http.send(http.build_request("GET", url, headers={"authorization": f"Bearer {session.access_token}"}),
                                   stream=True)
    except httpx.HTTPError:
        raise ServiceUnavailable("travel") from None
    if upstream.status_code >= 400:
        await upstream.aread()
        await upstream.aclose()
        raise ServiceUnavailable("travel") if upstream.status_code >= 500 else refused_from(upstream)
    media_type = upstream.headers.get("content-type", "").split(";")[0].strip()
    media_type = media_type if media_type in RECEIPT_TYPES else "application/octet-stream"
    extension = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}.get(media_type, "bin")
    headers = {
        "content-disposition": f'attachment; filename="receipt-{receipt_id}.{extension}"',
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'",
        "cache-control": "private, no-store",
    }
    if upstream.headers.get("content-length", "").isdigit():
        headers["content-length"] = upstream.headers["content-length"]
    return StreamingResponse(upstream.aiter_bytes(), media_type=media_type, headers=headers, background=BackgroundTask(upstream.aclose))


@router.get("/delegate", include_in_schema=False)
async def start(principal: Person) -> RedirectResponse:
    return RedirectResponse("/delegate/events", status_code=303)
