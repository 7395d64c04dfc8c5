"""Composition root of the portal: the pages people use in a browser, in English or French, over
the services' public APIs (services/portal/web.py), signed in through the identity provider."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from services.common import auth, login
from services.common.login import WebSessions, _local_path
from services.common.logs import configure_logging
from services.portal import i18n, pages
from services.portal.settings import PortalSettings
from services.portal.i18n import _
from services.portal.web import Refused, ServiceUnavailable, render

STATIC = Path(__file__).parent / "static"

# Pages, styles and the one script come from this site only; nothing inline, no framing.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}

general = APIRouter(dependencies=[auth.public])


@general.get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@general.get("/ready", summary="The services the portal calls answer")
async def ready(request: Request) -> JSONResponse:
    settings: PortalSettings = request.app.state.settings
    checks = {}
    for service in ("membership", "events", "travel", "finance"):
        try:
            answer = await request.app.state.http.get(f"{settings.service_url(service)}/health", timeout=2)
            checks[service] = "ok" if answer.status_code == 200 else f"answered {answer.status_code}"
        except httpx.HTTPError as err:
            checks[service] = f"unreachable ({type(err).__name__})"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)


@general.post("/language", summary="Remember the person's language (a cookie, and their e-mails' language when signed in)")
async def choose_language(request: Request, lang: str = Form(...), next: str = Form("/")) -> RedirectResponse:
    response = RedirectResponse(_local_path(next), status_code=303)
    if lang not in i18n.LANGUAGES:
        return response
    response.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    session = await request.app.state.web_sessions.session(request)
    if session is not None and session.principal.email:
        # Their e-mails follow the choice (best effort: the page's language is already remembered).
        try:
            await request.app.state.http.put(
                f"{request.app.state.settings.service_url('notifications')}/recipients/{session.principal.email}/language",
                json={"language": lang}, headers={"authorization": f"Bearer {session.access_token}"}, timeout=3)
        except httpx.HTTPError:
            pass
    return response


def build_app(settings: PortalSettings | None = None, *, keys: auth.KeySource | None = None,
              transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """`transport`: tests route the portal's calls to services running in their process."""
    settings = settings or PortalSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.service)
        async with httpx.AsyncClient(timeout=settings.service_timeout_seconds, transport=transport) as http:
            app.state.http = http
            yield

    app = FastAPI(title="ICC portal", description="The pages of the ICC platform, in English and French.", version="1.0.0",
                  lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.notes = {}
    verifier = auth.TokenVerifier(
        issuer=settings.oidc_issuer, audience=settings.oidc_audience,
        keys=keys or auth.JwksKeys.over_http(settings.oidc_issuer, settings.oidc_jwks_url, min_interval=settings.oidc_key_refresh_seconds),
        algorithms=frozenset(settings.oidc_algorithms), leeway=settings.oidc_leeway_seconds,
    )
    auth.install(app, verifier)
    app.state.web_sessions = WebSessions(settings, verifier)

    @app.middleware("http")
    async def language_and_headers(request: Request, call_next) -> Response:
        i18n.language.set(i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")))
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("content-language", i18n.language.get())
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, err: Refused) -> Response:
        return render(request, "error.html", status=err.status, refused=err)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError) -> Response:
        # A page's address or form the browser mangled (an id that is no id, a page number that is
        # no number): the person gets a page, not JSON. Forms the portal renders never do this.
        return render(request, "error.html", status=404 if request.method == "GET" else 422,
                      refused=Refused(404, _("This address is not one the portal knows. Go back to the front page.")))

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, err: ServiceUnavailable) -> Response:
        return render(request, "error.html", status=503, unavailable=str(err))

    app.include_router(general)
    app.include_router(login.router)
    # Every module of services/portal/pages with a `router` is a part of the portal.
    for module in pkgutil.iter_modules(pages.__path__):
        part = importlib.import_module(f"{pages.__name__}.{module.name}")
        if hasattr(part, "router"):
            app.include_router(part.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
