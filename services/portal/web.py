"""What every page of the portal uses: the person's calls to the services (with their own token),
refusals turned into messages next to the fields, the templates, the menu and "what happened"
notes after a write.

The portal is a backend-for-frontend: it never touches a service's database, it calls the same
HTTP APIs anyone may call, as the signed-in person. So a service's rules, scope and refusals apply
to the portal exactly as to the API; the portal only says them in the person's language."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.common.auth import Principal
from services.common.login import SESSION_COOKIE
from services.portal import i18n
from services.portal.i18n import _

log = logging.getLogger("icc.portal")

TEMPLATES = Path(__file__).parent / "templates"
MAX_PENDING_NOTES = 10_000  # sessions with a note not yet shown


# --- the menu ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MenuItem:
    path: str
    label: str  # English; translated when shown
    roles: tuple[str, ...]  # shown to a person holding one of these


MENU: list[MenuItem] = []


def menu_item(path: str, label: str, *roles: str) -> None:
    """A page module puts its entry points in the menu of the roles that may use them."""
    MENU.append(MenuItem(path, label, roles))


def menu_for(principal: Principal | None) -> list[MenuItem]:
    if principal is None:
        return []
    return [item for item in MENU if principal.has(*item.roles)]


# --- refusals -----------------------------------------------------------------------------------


@dataclass
class Refused(Exception):
    """A service said no (4xx). `errors` maps form fields (`nights`, `lines[0].amount`) to messages
    in the person's language; `message` is the one sentence to show above the form."""

    status: int
    message: str
    code: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class ServiceUnavailable(Exception):
    """A service did not answer, or answered 5xx: nothing the person can fix but try again."""


def _field_of(location: list[Any]) -> str:
    parts = [p for p in location if p not in ("body", "query", "path")]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "form"


def refusal_text(code: str | None, detail: str) -> str:
    """The service's own sentence in English (it names the values); in French the catalogue's text
    for its stable code (`refusal.<code>`), or the sentence itself if the code is new."""
    if i18n.language.get() == i18n.DEFAULT or not code:
        return detail
    return i18n.catalogue(i18n.language.get()).get(f"refusal.{code}", detail)


def validation_text(error: dict[str, Any]) -> str:
    if i18n.language.get() == i18n.DEFAULT:
        return str(error.get("msg", ""))
    texts = i18n.catalogue(i18n.language.get())
    return texts.get(f"validation.{error.get('type')}", texts.get("validation.invalid", str(error.get("msg", ""))))


def refused_from(response: httpx.Response) -> Refused:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:300]}
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # request validation: one entry per field
        errors: dict[str, str] = {}
        for error in detail:
            errors.setdefault(_field_of(list(error.get("loc", []))), validation_text(error))
        return Refused(response.status_code, _("Some fields need correcting."), "invalid", errors)
    code = body.get("code") if isinstance(body, dict) else None
    message = refusal_text(code, str(detail or response.reason_phrase))
    if response.status_code == 404 and not code:
        message = _("Not found, or not yours to see.")
    errors = {body["field"]: message} if isinstance(body, dict) and body.get("field") else {}
    return Refused(response.status_code, message, code, errors)


# --- the services, as the signed-in person --------------------------------------------------------


class Services:
    """The four services' APIs with the person's access token (one per request)."""

    def __init__(self, request: Request, token: str | None):
        self._http: httpx.AsyncClient = request.app.state.http
        self._settings = request.app.state.settings
        self._token = token

    async def call(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self._token}", "accept-language": i18n.language.get()} if self._token else {}
        url = f"{self._settings.service_url(service)}{path}"
        try:
            response = await self._http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as err:
            log.warning("service unreachable", extra={"service": service, "path": path, "error": repr(err)})
            raise ServiceUnavailable(service) from None
        if response.status_code >= 500:
            log.warning("service failed", extra={"service": service, "path": path, "status": response.status_code})
            raise ServiceUnavailable(service)
        if response.status_code >= 400:
            raise refused_from(response)
        return response

    async def get(self, service: str, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return (await self.call(service, "GET", path, params=clean)).json()

    async def post(self, service: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = await self.call(service, "POST", path, **({"json": body} if body is not None else {}), **kwargs)
        return response.json() if response.content else None

    async def put(self, service: str, path: str, body: Any = None) -> Any:
        response = await self.call(service, "PUT", path, json=body)
        return response.json() if response.content else None

    async def delete(self, service: str, path: str) -> Any:
        response = await self.call(service, "DELETE", path)
        return response.json() if response.content else None


async def services(request: Request) -> Services:
    session = await request.app.state.web_sessions.session(request)
    return Services(request, session.access_token if session else None)


Api = Annotated[Services, Depends(services)]


# --- notes after a write ("the claim was submitted") --------------------------------------------


def note(request: Request, text: str) -> None:
    """Shown once, on the next page this browser opens (post/redirect/get)."""
    notes: dict[str, list[str]] = request.app.state.notes
    key = request.cookies.get(SESSION_COOKIE, "")
    if key:
        notes.setdefault(key, []).append(text)
        while len(notes) > MAX_PENDING_NOTES:  # browsers that never came back: their oldest notes go
            notes.pop(next(iter(notes)))


def _take_notes(request: Request) -> list[str]:
    return request.app.state.notes.pop(request.cookies.get(SESSION_COOKIE, ""), [])


def done(request: Request, text: str, to: str) -> RedirectResponse:
    """After a write: say what happened, and show the page it happened on."""
    note(request, text)
    return RedirectResponse(to, status_code=303)


# --- templates ------------------------------------------------------------------------------------


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(), extensions=["jinja2.ext.i18n"],
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(money=i18n.money, number=i18n.number, day=i18n.day, moment=i18n.moment, country=i18n.country)
    return env


ENVIRONMENT = _environment()


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    principal: Principal | None = getattr(request.state, "principal", None)
    page = {
        "request": request,
        "principal": principal,
        "menu": menu_for(principal),
        "notes": _take_notes(request),
        "lang": i18n.language.get(),
        "languages": i18n.NAMES,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "dashboard_url": request.app.state.settings.dashboard_url,
        "errors": {},
        "form": {},
        "refused": None,
    }
    return HTMLResponse(ENVIRONMENT.get_template(template).render({**page, **context}), status_code=status)


def refused_form(request: Request, template: str, refused: Refused, form: dict[str, Any], **context: Any) -> HTMLResponse:
    """The same form again, as the person filled it, with the service's refusal next to the fields."""
    return render(request, template, status=refused.status if refused.status < 500 else 400,
                  refused=refused, errors=refused.errors, form=form, **context)
