"""The secretariat's pages: cities from application to member (the documents and their signatures,
the ICC INDEX questionnaire and its analysis queue, the withdrawal) and the expert visits' costs.

Membership decides who may do what and when (a signature twice, a withdrawal before joining, answers
that do not fit the questionnaire); these pages only ask it and show its answer. The auditor reads
what membership and travel let it read; the forms are the secretariat's."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.common.auth import Principal, page
from services.portal.i18n import _, day, number
from services.portal.web import Api, Refused, ServiceUnavailable, done, menu_item, refused_form, render

router = APIRouter(prefix="/secretariat")

Reader = Annotated[Principal, page("secretariat", "auditor")]
Secretariat = Annotated[Principal, page("secretariat")]

menu_item("/secretariat/cities", "Cities", "secretariat", "auditor")
menu_item("/secretariat/index-queue", "INDEX analysis queue", "secretariat", "auditor")
menu_item("/secretariat/expert-visits", "Expert visits", "secretariat", "auditor")

PAGE = 25
CITY_STATUSES = ("applicant", "member", "left")
VISIT_STATUSES = ("submitted", "approved", "held", "paid", "rejected")
VISIT_LINES = 3  # blank expense rows on the expert visit form; a blank row is not sent
DOCUMENTS = {"statement_of_intent": "statement-of-intent", "financial_agreement": "financial-agreement"}


def status_names() -> dict[str, str]:
    return {"applicant": _("Applicant"), "member": _("Member"), "left": _("Left the network"),
            "submitted": _("Submitted"), "approved": _("Approved"), "held": _("Held"), "paid": _("Paid"),
            "rejected": _("Rejected")}


def kind_options() -> list[tuple[str, str]]:
    return [("transport", _("Transport")), ("visa", _("Visa fees")), ("local_transport", _("Local transport"))]


def document_options() -> list[tuple[str, str]]:
    return [("statement_of_intent", _("Statement of intent")), ("financial_agreement", _("Financial agreement"))]


def options(values: tuple[str, ...], names: dict[str, str]) -> list[tuple[str, str]]:
    """A filter's choices: all, then each value by its name."""
    return [("", _("All"))] + [(value, names[value]) for value in values]


def paging(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(limit, 200)), max(0, offset)


async def form_of(request: Request) -> dict[str, str]:
    return {key: str(value).strip() for key, value in (await request.form()).items()}


def blank_is_none(value: str | None) -> str | None:
    return value if value else None


# --- cities ----------------------------------------------------------------------------------------


@router.get("/cities", response_class=HTMLResponse)
async def cities(request: Request, principal: Reader, api: Api, status: str = "", limit: int = PAGE,
                 offset: int = 0) -> HTMLResponse:
    limit, offset = paging(limit, offset)
    status = status if status in CITY_STATUSES else ""
    found = await api.get("membership", "/cities", status=status, limit=limit, offset=offset)
    return render(request, "secretariat/cities.html", cities=found, chosen=status, limit=limit, offset=offset,
                  status_options=options(CITY_STATUSES, status_names()), status_names=status_names())


@router.get("/cities/new", response_class=HTMLResponse)
async def application_form(request: Request, principal: Secretariat) -> HTMLResponse:
    return render(request, "secretariat/application.html")


@router.post("/cities", response_class=HTMLResponse)
async def record_application(request: Request, principal: Secretariat, api: Api) -> Response:
    form = await form_of(request)
    body = {"name": form.get("name", ""), "country": form.get("country", "").upper(), "population": form.get("population", ""),
            "foreign_born_share": blank_is_none(form.get("foreign_born_share")), "contact": blank_is_none(form.get("contact"))}
    try:
        city = await api.post("membership", "/cities", body)
    except Refused as refused:
        return refused_form(request, "secretariat/application.html", refused, form=form)
    return done(request, _("The application of %(name)s is recorded.") % {"name": city["name"]},
                f"/secretariat/cities/{city['id']}")


def journey(city: dict[str, Any], index: dict[str, Any]) -> list[dict[str, Any]]:
    """The path from applicant to member, each step done or still missing."""
    answered = bool(index.get("result") or index.get("waiting"))
    return [
        {"name": _("Application recorded"), "done": True, "on": city["applied_on"]},
        {"name": _("ICC INDEX questionnaire answered (recommended first)"), "done": answered, "optional": True,
         "on": (index.get("result") or {}).get("analysed_on")},
        {"name": _("Statement of intent signed"), "done": bool(city["statement_signed_on"]), "on": city["statement_signed_on"]},
        {"name": _("Financial agreement signed"), "done": bool(city["agreement_signed_on"]), "on": city["agreement_signed_on"]},
        {"name": _("Member of the network"), "done": bool(city["joined_on"]), "on": city["joined_on"]},
    ]


async def city_page(request: Request, api: Api, city_id: UUID, *, refused: Refused | None = None, form: dict | None = None,
                    failed: str = "") -> HTMLResponse:
    """The city's file; after a refused signature, the same page with the refusal next to that form."""
    city = await api.get("membership", f"/cities/{city_id}")
    index: dict[str, Any] = {"result": None}
    try:
        index["result"] = await api.get("membership", f"/cities/{city_id}/index-result")
    except Refused:  # nothing analysed yet (a 404): the queue below says where its answers stand
        pass
    queue = await api.get("membership", "/index-queue", limit=1000)
    index["waiting"] = next((entry for entry in queue if entry["city_id"] == str(city_id)), None)
    corrections = await api.get("membership", f"/cities/{city_id}/signature-corrections")
    try:
        visits: list[dict] | None = await api.get("travel", "/expert-visits", city_id=str(city_id), limit=100)
    except ServiceUnavailable:  # the city's file still shows; its visits' costs say they are unavailable
        visits = None
    context = dict(city=city, index=index, corrections=corrections, visits=visits, steps=journey(city, index),
                   status_names=status_names(), failed=failed, documents=document_options())
    if refused is not None:
        return refused_form(request, "secretariat/city.html", refused, form=form or {}, **context)
    return render(request, "secretariat/city.html", **context)


@router.get("/cities/{city_id}", response_class=HTMLResponse)
async def city(request: Request, city_id: UUID, principal: Reader, api: Api) -> HTMLResponse:
    return await city_page(request, api, city_id)


async def sign(request: Request, api: Api, city_id: UUID, document: str) -> Response:
    form = await form_of(request)
    try:
        city = await api.post("membership", f"/cities/{city_id}/{DOCUMENTS[document]}", {"signed_on": form.get("signed_on", "")})
    except Refused as refused:
        return await city_page(request, api, city_id, refused=refused, form=form, failed=document)
    if document == "statement_of_intent":
        text = _("Statement of intent signed on %(day)s.") % {"day": day(city["statement_signed_on"])}
    else:
        text = _("Financial agreement signed on %(day)s.") % {"day": day(city["agreement_signed_on"])}
    if city["status"] == "member":
        text += " " + _("%(name)s is now a member of the network.") % {"name": city["name"]}
    return done(request, text, f"/secretariat/cities/{city_id}")


@router.post("/cities/{city_id}/statement-of-intent", response_class=HTMLResponse)
async def sign_statement(request: Request, city_id: UUID, principal: Secretariat, api: Api) -> Response:
    return await sign(request, api, city_id, "statement_of_intent")


@router.post("/cities/{city_id}/financial-agreement", response_class=HTMLResponse)
async def sign_agreement(request: Request, city_id: UUID, principal: Secretariat, api: Api) -> Response:
    return await sign(request, api, city_id, "financial_agreement")


@router.post("/cities/{city_id}/signature-corrections", response_class=HTMLResponse)
async def correct_signature(request: Request, city_id: UUID, principal: Secretariat, api: Api) -> Response:
    form = await form_of(request)
    body = {"document": form.get("document", ""), "signed_on": form.get("signed_on", ""), "reason": form.get("reason", "")}
    try:
        city = await api.post("membership", f"/cities/{city_id}/signature-corrections", body)
    except Refused as refused:
        return await city_page(request, api, city_id, refused=refused, form=form, failed="correction")
    text = _("Signature date corrected: %(name)s is a member since %(day)s.") % {"name": city["name"], "day": day(city["joined_on"])}
    return done(request, text, f"/secretariat/cities/{city_id}")


# --- withdrawal ------------------------------------------------------------------------------------


@router.get("/cities/{city_id}/withdrawal", response_class=HTMLResponse)
async def withdrawal_form(request: Request, city_id: UUID, principal: Secretariat, api: Api) -> HTMLResponse:
    return render(request, "secretariat/withdrawal.html", city=await api.get("membership", f"/cities/{city_id}"))


@router.post("/cities/{city_id}/withdrawal", response_class=HTMLResponse)
async def withdraw(request: Request, city_id: UUID, principal: Secretariat, api: Api) -> Response:
    form = await form_of(request)
    try:
        if form.get("confirm") != "yes":  # leaving cannot be undone: the person says so first
            raise Refused(400, _("Some fields need correcting."), "unconfirmed",
                          {"confirm": _("Tick the box to confirm the withdrawal.")})
        city = await api.post("membership", f"/cities/{city_id}/withdrawal", {"effective_on": form.get("effective_on", "")})
    except Refused as refused:
        return refused_form(request, "secretariat/withdrawal.html", refused, form=form,
                            city=await api.get("membership", f"/cities/{city_id}"))
    text = _("%(name)s withdraws: a member up to and including %(day)s.") % {"name": city["name"], "day": day(city["left_on"])}
    return done(request, text, f"/secretariat/cities/{city_id}")


# --- the ICC INDEX ---------------------------------------------------------------------------------


@router.get("/cities/{city_id}/index-questionnaire", response_class=HTMLResponse)
async def questionnaire_form(request: Request, city_id: UUID, principal: Secretariat, api: Api) -> HTMLResponse:
    return render(request, "secretariat/questionnaire.html", city=await api.get("membership", f"/cities/{city_id}"),
                  questionnaire=await api.get("membership", "/index-questionnaire"))


@router.post("/cities/{city_id}/index-questionnaire", response_class=HTMLResponse)
async def submit_questionnaire(request: Request, city_id: UUID, principal: Secretariat, api: Api) -> Response:
    form = await form_of(request)
    # A question left blank is not sent: membership says which must be answered (every core one).
    answers = {key.removeprefix("answers."): value for key, value in form.items() if key.startswith("answers.") and value}
    body: dict[str, Any] = {"answers": answers}
    if form.get("version"):
        body["version"] = form["version"]
    try:
        entry = await api.post("membership", f"/cities/{city_id}/index-questionnaire", body)
    except Refused as refused:
        return refused_form(request, "secretariat/questionnaire.html", refused, form=form,
                            city=await api.get("membership", f"/cities/{city_id}"),
                            questionnaire=await api.get("membership", "/index-questionnaire", version=form.get("version")))
    text = _("INDEX answers submitted: number %(position)s in the analysis queue.") % {"position": entry["position"]}
    return done(request, text, f"/secretariat/cities/{city_id}")


@router.get("/index-queue", response_class=HTMLResponse)
async def index_queue(request: Request, principal: Reader, api: Api, limit: int = PAGE, offset: int = 0) -> HTMLResponse:
    limit, offset = paging(limit, offset)
    queue = await api.get("membership", "/index-queue", limit=limit, offset=offset)
    return render(request, "secretariat/queue.html", queue=queue, limit=limit, offset=offset)


@router.post("/index-queue/analysis", response_class=HTMLResponse)
async def analyse_next(request: Request, principal: Secretariat, api: Api) -> Response:
    form = await form_of(request)
    analyst = blank_is_none(form.get("analyst"))
    try:
        analysis = await api.post("membership", "/index-queue/analysis", {"analyst": analyst} if analyst else {})
    except Refused as refused:
        return refused_form(request, "secretariat/queue.html", refused, form=form,
                            queue=await api.get("membership", "/index-queue", limit=PAGE), limit=PAGE, offset=0)
    return done(request, _("Analysed: an overall index of %(overall)s.") % {"overall": number(analysis["overall"])},
                f"/secretariat/cities/{analysis['city_id']}")


# --- expert visits (their costs, in travel) ------------------------------------------------------------


async def city_names(api: Api) -> dict[str, str]:
    return {city["id"]: city["name"] for city in await api.get("membership", "/cities", limit=1000)}


@router.get("/expert-visits", response_class=HTMLResponse)
async def expert_visits(request: Request, principal: Reader, api: Api, city_id: str = "", status: str = "", limit: int = PAGE,
                        offset: int = 0) -> HTMLResponse:
    limit, offset = paging(limit, offset)
    status = status if status in VISIT_STATUSES else ""
    try:
        city_id = str(UUID(city_id)) if city_id else ""
    except ValueError:
        city_id = ""
    visits = await api.get("travel", "/expert-visits", city_id=city_id, status=status, limit=limit, offset=offset)
    return render(request, "secretariat/visits.html", visits=visits, cities=await city_names(api), city_id=city_id,
                  chosen=status, status_options=options(VISIT_STATUSES, status_names()), status_names=status_names(),
                  limit=limit, offset=offset)


@router.get("/expert-visits/new", response_class=HTMLResponse)
async def expert_visit_form(request: Request, principal: Secretariat, api: Api, city_id: str = "") -> HTMLResponse:
    return render(request, "secretariat/visit_form.html", cities=await city_names(api), lines=range(VISIT_LINES),
                  kind_options=kind_options(), form={"city_id": city_id, "nights": "0", "travellers": "2"})


@router.post("/expert-visits", response_class=HTMLResponse)
async def record_expert_visit(request: Request, principal: Secretariat, api: Api) -> Response:
    form = await form_of(request)
    # Only the rows with something in them are lines; each keeps its row number for the refusals.
    rows = [i for i in range(VISIT_LINES) if any(form.get(f"lines[{i}].{part}") for part in ("amount", "receipt", "traveller"))]
    lines = [{"kind": form.get(f"lines[{i}].kind", ""), "amount": form.get(f"lines[{i}].amount", ""),
              "currency": form.get(f"lines[{i}].currency", "").upper(), "spent_on": form.get(f"lines[{i}].spent_on", ""),
              "receipt": blank_is_none(form.get(f"lines[{i}].receipt")),
              "traveller": blank_is_none(form.get(f"lines[{i}].traveller"))}
             for i in rows]
    body = {"city_id": form.get("city_id", ""), "visit_date": form.get("visit_date", ""), "nights": form.get("nights") or 0,
            "travellers": form.get("travellers") or 2, "lines": lines}
    try:
        visit = await api.post("travel", "/expert-visits", body)
    except Refused as refused:
        refused.errors = {renumbered(name, rows): text for name, text in refused.errors.items()}
        return refused_form(request, "secretariat/visit_form.html", refused, form=form, cities=await city_names(api),
                            lines=range(VISIT_LINES), kind_options=kind_options())
    text = _("The expert visit to %(name)s on %(day)s is recorded.") % {"name": visit["city_name"], "day": day(visit["visit_date"])}
    return done(request, text, f"/secretariat/expert-visits?city_id={visit['city_id']}")


def renumbered(name: str, rows: list[int]) -> str:
    """`lines[0].amount` of what was sent is the form's row `rows[0]`."""
    if name.startswith("lines[") and "]" in name:
        sent, rest = name[len("lines["):].split("]", 1)
        if sent.isdigit() and int(sent) < len(rows):
            return f"lines[{rows[int(sent)]}]{rest}"
    return name
