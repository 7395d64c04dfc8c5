"""Browser sign-in for the platform's pages, done on the server: OpenID Connect authorization code
flow with PKCE (S256), state and nonce, as the confidential client `icc-web`.

`/login` sends the browser to the provider's login page; `/auth/callback` exchanges the code for
tokens here, on the server, with the client's secret; `/logout` ends our session and the provider's.
The browser only ever holds a random session id, in an HttpOnly, SameSite=Lax cookie: the tokens
stay on the server and never reach the page's JavaScript. An access token about to expire is
renewed with the refresh token when the session is next used.

Sessions are kept in this process's memory: a restart signs everyone out (they sign in again, in
one click while their provider session lasts), and two processes of one service would not share
them. Enough for one process per service; a shared store is the step after that.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.common.auth import InvalidToken, Principal, ProviderUnavailable, TokenVerifier, discover, public
from services.common.settings import WebSettings

log = logging.getLogger("icc.login")

SESSION_COOKIE = "icc_session"
STATE_COOKIE = "icc_login"
LANGUAGE_COOKIE = "icc_lang"  # the portal's language choice: the provider's login page speaks it too
LOGIN_SECONDS = 600  # a sign-in not finished within this is started again
RENEW_MARGIN_SECONDS = 30  # renew an access token this long before it expires


@dataclass
class _Pending:
    nonce: str
    verifier: str
    next_url: str
    redirect_uri: str
    started: float = field(default_factory=time.monotonic)


@dataclass
class WebSession:
    id: str
    principal: Principal = None  # type: ignore[assignment]  # set from the first tokens
    access_token: str = ""
    expires_at: float = 0.0  # when the access token expires (epoch seconds)
    refresh_token: str | None = None
    id_token: str | None = None
    refresh_until: float | None = None  # epoch seconds; None: as long as the provider's session
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _local_path(url: str | None) -> str:
    """Only a path on this site may be a destination after sign-in (no open redirect)."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return "/"


class WebSessions:
    """The signed-in browsers of this process, and the calls to the provider they need."""

    def __init__(self, settings: WebSettings, verifier: TokenVerifier, *, transport: httpx.AsyncBaseTransport | None = None):
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_web_client_id
        self._secret = settings.oidc_web_client_secret
        self.verifier = verifier
        self._transport = transport  # tests stand in for the provider's HTTP API
        self._metadata: dict[str, Any] | None = None
        self._pending: dict[str, _Pending] = {}
        self._sessions: dict[str, WebSession] = {}

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=10, transport=self._transport)

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            try:
                async with self._http() as http:
                    self._metadata = await discover(http, self.issuer)
            except Exception as err:
                raise ProviderUnavailable(
                    f"the identity provider ({self.issuer}) cannot be reached ({type(err).__name__}: {err}); "
                    "try again in a few seconds"
                ) from None
        return self._metadata

    async def begin(self, next_url: str, redirect_uri: str, language: str | None = None) -> tuple[str, str]:
        """A new sign-in: its state and the provider URL to send the browser to."""
        now = time.monotonic()
        self._pending = {s: p for s, p in self._pending.items() if now - p.started < LOGIN_SECONDS}
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        self._pending[state] = _Pending(nonce, verifier, _local_path(next_url), redirect_uri)
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri, "scope": "openid",
            "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256",
            **({"ui_locales": language} if language else {}),
        })
        return state, f"{(await self.metadata())['authorization_endpoint']}?{query}"

    async def complete(self, state: str, code: str) -> tuple[WebSession, str]:
        """Exchange the code of sign-in `state`; the new session and where to go next."""
        pending = self._pending.pop(state, None)
        if pending is None or time.monotonic() - pending.started >= LOGIN_SECONDS:
            raise InvalidToken("this sign-in is unknown or took longer than 10 minutes")
        tokens = await self._token_request({
            "grant_type": "authorization_code", "code": code, "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.verifier,
        })
        if "id_token" not in tokens:
            raise InvalidToken("the provider returned no ID token")
        identity = await self.verifier.claims(tokens["id_token"], audience=self.client_id, token_type="ID")
        if identity.get("nonce") != pending.nonce:
            raise InvalidToken("the ID token does not answer this sign-in (nonce)")
        session = WebSession(secrets.token_urlsafe(32))
        await self._apply(session, tokens)
        now = time.time()
        self._sessions = {i: s for i, s in self._sessions.items() if s.refresh_until is None or s.refresh_until > now}
        self._sessions[session.id] = session
        log.info("signed in", extra={"user": session.principal.username, "roles": sorted(session.principal.roles)})
        return session, pending.next_url

    async def _apply(self, session: WebSession, tokens: dict[str, Any]) -> None:
        session.principal = await self.verifier.verify(tokens["access_token"])
        session.access_token = tokens["access_token"]
        session.expires_at = time.time() + float(tokens.get("expires_in", 60))
        session.refresh_token = tokens.get("refresh_token", session.refresh_token)
        session.id_token = tokens.get("id_token", session.id_token)
        if "refresh_expires_in" in tokens:
            # Keycloak's 0 means "as long as the provider session lasts".
            session.refresh_until = time.time() + float(tokens["refresh_expires_in"]) if tokens["refresh_expires_in"] else None

    async def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        endpoint = (await self.metadata())["token_endpoint"]
        try:
            async with self._http() as http:
                response = await http.post(endpoint, data=form, auth=(self.client_id, self._secret))
        except httpx.HTTPError as err:
            raise ProviderUnavailable(f"the identity provider ({self.issuer}) cannot be reached ({err!r}); try again") from None
        if response.status_code >= 500:
            raise ProviderUnavailable(f"the identity provider answered {response.status_code}; try again")
        if response.status_code != 200:
            try:
                reason = response.json().get("error_description") or response.json().get("error")
            except ValueError:
                reason = response.text[:200]
            raise InvalidToken(f"the provider refused: {reason}")
        return response.json()

    async def principal(self, request: Request) -> Principal | None:
        """Who this browser's session belongs to (renewing its access token when due), or None."""
        session = await self.session(request)
        return None if session is None else session.principal

    async def session(self, request: Request) -> WebSession | None:
        """This browser's session with an access token good for a while yet (renewed when due), or
        None. The portal calls the services with that token on the person's behalf."""
        session = self._sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            return None
        if time.time() < session.expires_at - RENEW_MARGIN_SECONDS:
            return session
        async with session.lock:  # one renewal however many requests find it due
            if time.time() < session.expires_at - RENEW_MARGIN_SECONDS:
                return session
            if session.refresh_token is None:
                self._sessions.pop(session.id, None)
                return None
            try:
                await self._apply(session, await self._token_request(
                    {"grant_type": "refresh_token", "refresh_token": session.refresh_token}))
            except InvalidToken as err:  # the provider session ended (logout elsewhere, idle timeout)
                log.info("session ended: renewal refused", extra={"user": session.principal.username, "reason": str(err)})
                self._sessions.pop(session.id, None)
                return None
            log.info("session renewed", extra={"user": session.principal.username})
            return session

    def end(self, session_id: str | None) -> WebSession | None:
        return self._sessions.pop(session_id or "", None)


def _sessions(request: Request) -> WebSessions:
    return request.app.state.web_sessions


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>{title}</title>"
                        f"<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1>{body}", status_code=status)


router = APIRouter(tags=["sign-in"], dependencies=[public])


@router.get("/login", summary="Sign in through the identity provider, then back to `next`", response_class=RedirectResponse)
async def login(request: Request, next: str = "/") -> RedirectResponse:
    try:
        state, url = await _sessions(request).begin(
            next, str(request.url_for("auth_callback")), request.cookies.get(LANGUAGE_COOKIE))
    except ProviderUnavailable as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "5"}) from None
    response = RedirectResponse(url, status_code=303)
    # Ties the sign-in to this browser: a callback carrying someone else's state is refused.
    response.set_cookie(STATE_COOKIE, state, max_age=LOGIN_SECONDS, path="/auth", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@router.get("/auth/callback", name="auth_callback", summary="Where the provider sends the browser back", response_class=RedirectResponse)
async def auth_callback(request: Request, state: str = "", code: str = "", error: str = "", error_description: str = ""):
    if error:
        return _page("Sign-in failed", f"<p>{escape(error_description or error)}</p><p><a href='/login'>Try again</a></p>", 400)
    if not state or not code or request.cookies.get(STATE_COOKIE) != state:
        return _page("Sign-in failed", "<p>This sign-in did not start in this browser, or took too long.</p>"
                     "<p><a href='/login'>Start again</a></p>", 400)
    try:
        session, next_url = await _sessions(request).complete(state, code)
    except InvalidToken as err:
        log.warning("sign-in refused", extra={"reason": str(err)})
        return _page("Sign-in failed", f"<p>{escape(str(err))}</p><p><a href='/login'>Start again</a></p>", 400)
    except ProviderUnavailable as err:
        return _page("Sign-in unavailable", f"<p>{escape(str(err))}</p>", 503)
    response = RedirectResponse(next_url, status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/auth")
    response.set_cookie(SESSION_COOKIE, session.id, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    return response


@router.api_route("/logout", methods=["GET", "POST"], summary="Sign out here and at the identity provider", response_class=RedirectResponse)
async def logout(request: Request, next: str = "/") -> RedirectResponse:
    sessions = _sessions(request)
    session = sessions.end(request.cookies.get(SESSION_COOKIE))
    signed_out = f"{request.url_for('signed_out')}?{urlencode({'next': _local_path(next)})}"
    target = signed_out
    if session is not None:
        log.info("signed out", extra={"user": session.principal.username})
        try:
            end_session = (await sessions.metadata())["end_session_endpoint"]
            query = {"client_id": sessions.client_id, "post_logout_redirect_uri": signed_out}
            if session.id_token:
                query["id_token_hint"] = session.id_token
            target = f"{end_session}?{urlencode(query)}"  # ends the provider's session too
        except (ProviderUnavailable, KeyError):
            pass  # signed out here; the provider's own session ends with its timeout
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/signed-out", name="signed_out", summary="Shown after signing out", response_class=HTMLResponse)
async def signed_out(next: str = "/") -> HTMLResponse:
    again = f"/login?{urlencode({'next': _local_path(next)})}"
    return _page("Signed out", f"<p data-testid=signed-out>You are signed out.</p><p><a href='{escape(again)}'>Sign in again</a></p>")
