"""The organiser's pages: the network's events (thematic workshops, study visits, high-level
meetings), scheduling one, moving or cancelling it, and who is coming (seated, funded or
self-funded, and the waiting list), with the participant list to download.

Everything goes through the events service's API as the signed-in person: it decides who may
schedule (organisers) and who may read the participant list (organisers, the secretariat, ...)."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from contracts.reference import iso_country_codes
from services.common.auth import Principal, page
from services.common.fields import today
from services.portal.i18n import _, country, day
from services.portal.web import Api, Refused, done, menu_item, refused_form, render

router = APIRouter()

# Organisers run the events; the secretariat may look (the events API refuses it the writes).
Organiser = Annotated[Principal, page("organiser", "secretariat")]

HOME = "/organiser/events"
menu_item(HOME, "Events", "organiser", "secretariat")

KINDS = {
    "thematic_workshop": "Thematic workshop",
    "study_visit": "Study visit",
    "high_level_meeting": "High-level meeting",
}
STATUSES = {"scheduled": "Scheduled", "cancelled": "Cancelled"}
PARTICIPATION = {"funded": "Funded", "self_funded": "Self-funded", "waitlisted": "Waiting list", "cancelled": "Cancelled"}
WHEN = {"upcoming": "Upcoming", "past": "Past", "all": "All dates"}
PAGE = 20


def _options(choices: dict[str, str], everything: str | None = None) -> list[tuple[str, str]]:
    first = [("", _(everything))] if everything else []
    return first + [(value, _(label)) for value, label in choices.items()]


def _words() -> dict[str, Any]:
    """What the templates say about kinds, statuses and participation, in the person's language."""
    return {"kinds": {k: _(v) for k, v in KINDS.items()}, "statuses": {k: _(v) for k, v in STATUSES.items()},
            "participation": {k: _(v) for k, v in PARTICIPATION.items()}}


def _unaccented(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()


def _countries() -> list[tuple[str, str]]:
    """Every country, by its name in the person's language (Égypte among the E's)."""
    named = [(code, country(code)) for code in iso_country_codes()]
    return [("", _("Choose a country"))] + sorted(named, key=lambda option: _unaccented(option[1]))


def _is_over(event: dict[str, Any]) -> bool:
    return date.fromisoformat(event["ends_on"]) < today()


# --- the list -----------------------------------------------------------------------------------


@router.get(HOME, response_class=HTMLResponse)
async def events(
    request: Request, principal: Organiser, api: Api,
    kind: str = "", status: str = "", when: str = "upcoming",
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE, offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    window = {"upcoming": {"starting_from": today()}, "past": {"until": today() - timedelta(days=1)}}.get(when, {})
    found = await api.get("events", "/workshops", kind=kind, status=status, limit=limit, offset=offset, **window)
    # "Past": over before today. The API's window is "started by yesterday", which includes the
    # events still running; those are left out here (the page count stays the API's, for paging).
    shown = [e for e in found if _is_over(e)] if when == "past" else found
    return render(request, "organiser/events.html", events=shown, count=len(found), limit=limit, offset=offset,
                  filters={"kind": kind, "status": status, "when": when},
                  kind_options=_options(KINDS, "All kinds"), status_options=_options(STATUSES, "All statuses"),
                  when_options=_options(WHEN), may_schedule=principal.has("organiser"), **_words())


# --- scheduling -----------------------------------------------------------------------------------


@router.get(f"{HOME}/new", response_class=HTMLResponse)
async def new_event(request: Request, principal: Organiser) -> HTMLResponse:
    return render(request, "organiser/new.html", form={"kind": "thematic_workshop", "funded_quota_per_city": 1},
                  kind_options=_options(KINDS), country_options=_countries())


@router.post(HOME, response_class=HTMLResponse)
async def schedule(
    request: Request, principal: Organiser, api: Api,
    title: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "", host_city: Annotated[str, Form()] = "",
    host_country: Annotated[str, Form()] = "", starts_on: Annotated[str, Form()] = "", ends_on: Annotated[str, Form()] = "",
    capacity: Annotated[str, Form()] = "", funded_quota_per_city: Annotated[str, Form()] = "",
) -> Response:
    form = {"title": title, "kind": kind, "host_city": host_city, "host_country": host_country.strip().upper(),
            "starts_on": starts_on, "ends_on": ends_on, "capacity": capacity, "funded_quota_per_city": funded_quota_per_city}
    # Empty fields are left out, so the API names them as missing (next to the field).
    body = {name: value.strip() if isinstance(value, str) else value for name, value in form.items() if value not in ("", None)}
    try:
        event = await api.post("events", "/workshops", body)
    except Refused as refused:
        return refused_form(request, "organiser/new.html", refused, form=form, kind_options=_options(KINDS),
                            country_options=_countries())
    return done(request, _("“%(title)s” is scheduled; delegates may register now.") % {"title": event["title"]},
                f"{HOME}/{event['id']}")


# --- one event ------------------------------------------------------------------------------------


async def _event_page(request: Request, principal: Principal, api: Api, event_id: UUID, *,
                      refused: Refused | None = None, form: dict[str, Any] | None = None) -> HTMLResponse:
    event = await api.get("events", f"/workshops/{event_id}")
    registrations = await api.get("events", f"/workshops/{event_id}/registrations", limit=1000)
    seated = [r for r in registrations if r["status"] == "registered"]
    waiting = [r for r in registrations if r["status"] == "waitlisted"]
    split = {"funded": sum(1 for r in seated if r["funded"]), "self_funded": sum(1 for r in seated if not r["funded"]),
             "waitlisted": len(waiting)}
    may_change = principal.has("organiser") and event["status"] == "scheduled" and not _is_over(event)
    context = dict(event=event, seated=seated, waiting=waiting, split=split, may_change=may_change,
                   form=form or {"starts_on": event["starts_on"], "ends_on": event["ends_on"], "capacity": event["capacity"]},
                   **_words())
    if refused is not None:
        return refused_form(request, "organiser/event.html", refused, **context)
    return render(request, "organiser/event.html", **context)


@router.get(HOME + "/{event_id}", response_class=HTMLResponse)
async def event_page(request: Request, event_id: UUID, principal: Organiser, api: Api) -> HTMLResponse:
    return await _event_page(request, principal, api, event_id)


@router.post(HOME + "/{event_id}/reschedule", response_class=HTMLResponse)
async def reschedule(
    request: Request, event_id: UUID, principal: Organiser, api: Api,
    starts_on: Annotated[str, Form()] = "", ends_on: Annotated[str, Form()] = "", capacity: Annotated[str, Form()] = "",
) -> Response:
    form = {"starts_on": starts_on, "ends_on": ends_on, "capacity": capacity}
    body = {name: value.strip() for name, value in form.items() if value.strip()}
    try:
        event = await api.post("events", f"/workshops/{event_id}/rescheduling", body)
    except Refused as refused:
        if refused.status == 404:
            raise
        return await _event_page(request, principal, api, event_id, refused=refused, form=form)
    moved = {"title": event["title"], "starts": day(event["starts_on"]), "ends": day(event["ends_on"])}
    return done(request, _("“%(title)s” now runs from %(starts)s to %(ends)s.") % moved, f"{HOME}/{event_id}")


@router.get(HOME + "/{event_id}/cancel", response_class=HTMLResponse)
async def confirm_cancel(request: Request, event_id: UUID, principal: Organiser, api: Api) -> HTMLResponse:
    """Cancelling voids every registration: the organiser says so twice."""
    event = await api.get("events", f"/workshops/{event_id}")
    return render(request, "organiser/cancel.html", event=event, **_words())


@router.post(HOME + "/{event_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, event_id: UUID, principal: Organiser, api: Api) -> Response:
    try:
        event = await api.post("events", f"/workshops/{event_id}/cancellation")
    except Refused as refused:
        if refused.status == 404:
            raise
        return await _event_page(request, principal, api, event_id, refused=refused)
    return done(request, _("“%(title)s” is cancelled; its registrations are void.") % {"title": event["title"]},
                f"{HOME}/{event_id}")


@router.get(HOME + "/{event_id}/participants.csv")
async def participants(event_id: UUID, principal: Organiser, api: Api) -> Response:
    """The events service's own CSV, as it wrote it (its file name too)."""
    answer = await api.call("events", "GET", f"/workshops/{event_id}/participants.csv")
    disposition = answer.headers.get("content-disposition", f'attachment; filename="participants-{event_id}.csv"')
    return Response(answer.content, media_type=answer.headers.get("content-type", "text/csv; charset=utf-8"),
                    headers={"Content-Disposition": disposition, "Cache-Control": "no-store"})

