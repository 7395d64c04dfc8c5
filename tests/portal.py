"""The portal in tests, two ways.

- In this process, fast (`portal_over`): the services run in-process (tests.support.running), the
  portal calls them through ASGI (no sockets), and a person is signed in by giving the portal a
  session holding a stand-in token (`PortalClient.sign_in`): what the sign-in would leave.
- In a browser (tests/e2e/conftest.py `portal_stack`): everything over real HTTP, the person signs
  in on Keycloak's own page (`sign_in`), and `accessible` checks the page with axe-core.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from services.common.login import SESSION_COOKIE, WebSession
from services.portal.app import build_app
from services.portal.settings import PortalSettings
from tests.identity import STAND_IN

SERVICES = ("membership", "events", "travel", "finance", "notifications")


class ByHost(httpx.AsyncBaseTransport):
    """Routes http://<service>/... to that service's ASGI app."""

    def __init__(self, apps: dict[str, FastAPI]):
        self._routes = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = self._routes.get(request.url.host)
        if route is None:
            return httpx.Response(502, text=f"no service {request.url.host} in this test")
        return await route.handle_async_request(request)


class PortalClient(httpx.AsyncClient):
    """An HTTP client of the portal (no redirects followed, so a test sees each 303)."""

    app: FastAPI

    def sign_in(self, *roles: str, username: str = "someone", email: str | None = None, city_id: Any = None,
                lang: str | None = None) -> WebSession:
        """From now on this client is `username` with `roles` (a city's people: `city_id`)."""
        token = STAND_IN.token(*roles, username=username, email=email or f"{username}@icc.example", city_id=city_id,
                               expires_in=3600)
        from services.common.auth import Principal
        import jwt

        session = WebSession(secrets.token_urlsafe(16))
        session.principal = Principal.of(jwt.decode(token, options={"verify_signature": False}))
        session.access_token = token
        session.expires_at = time.time() + 3600
        self.app.state.web_sessions._sessions[session.id] = session
        self.cookies.set(SESSION_COOKIE, session.id)
        if lang:
            self.cookies.set("icc_lang", lang)
        return session

    async def form(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        return await self.post(path, data=data, **kwargs)


@asynccontextmanager
async def portal_over(apps: dict[str, FastAPI], **settings: Any) -> AsyncIterator[PortalClient]:
    """The portal in this process, calling `apps` (already running: tests.support.running)."""
    app = build_app(
        PortalSettings(**{f"{name}_url": f"http://{name}" for name in SERVICES}, **settings),
        keys=STAND_IN.keys(), transport=ByHost(apps),
    )
    async with app.router.lifespan_context(app):
        async with PortalClient(transport=httpx.ASGITransport(app=app), base_url="http://portal") as client:
            client.app = app
            yield client


def text_of(html: str) -> str:
    """A page's visible words, roughly (tags dropped, spaces collapsed): for asserting what a person reads."""
    from html import unescape

    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", "", html, flags=re.S))).strip())
