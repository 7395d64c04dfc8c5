"""The few things the project asks of Keycloak's admin REST API: create or update a person of the
`icc` realm with exactly the given platform roles and city, and (for tests serving pages on a
random port) allow one more redirect URI for the `icc-web` client."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import httpx

from deploy.keycloak.local import ADMIN_PASSWORD, ADMIN_USERNAME, REALM
from services.common.auth import ROLES  # the realm's roles (a unit test keeps the two equal)


class AdminError(RuntimeError):
    """Keycloak refused or could not be reached."""


@dataclass
class User:
    id: str
    username: str
    email: str
    roles: list[str]
    city_id: str | None


class KeycloakAdmin:
    """Signs in to the `master` realm as the admin and talks to the `icc` realm."""

    def __init__(self, url: str, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD, realm: str = REALM):
        self.url = url.rstrip("/")
        self.realm = realm
        self._http = httpx.Client(base_url=f"{self.url}/admin/realms/{realm}", timeout=30)
        try:
            answer = httpx.post(
                f"{self.url}/realms/master/protocol/openid-connect/token",
                data={"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password},
                timeout=30,
            )
        except httpx.HTTPError as err:
            raise AdminError(f"Keycloak is not reachable at {self.url} ({err!r}); start it (make keycloak) "
                             "or set KEYCLOAK_URL") from None
        if answer.status_code != 200:
            raise AdminError(f"Keycloak at {self.url} refused the admin sign-in ({answer.status_code}): check "
                             "KEYCLOAK_ADMIN / KEYCLOAK_ADMIN_PASSWORD")
        self._http.headers["authorization"] = f"Bearer {answer.json()['access_token']}"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KeycloakAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AdminError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response

    def upsert_user(
        self,
        username: str,
        email: str,
        roles: list[str],
        *,
        city_id: UUID | str | None = None,
        password: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """Create the person, or update the existing one: e-mail, city, password (default: user
        name + `-pass`) and exactly `roles` among the platform's roles (others are removed)."""
        unknown = sorted(set(roles) - set(ROLES))
        if unknown or not roles:
            raise AdminError(f"unknown or missing role(s) {unknown}: choose among {', '.join(ROLES)}")
        body = {
            "username": username,
            "email": email,
            "emailVerified": True,
            "enabled": True,
            "firstName": first_name or "",
            "lastName": last_name or "",
            # Declared in the realm's user profile; replacing the attributes leaves city-less people city-less.
            "attributes": {"city_id": [str(UUID(str(city_id)))]} if city_id else {},
        }
        found = self._call("GET", "/users", params={"username": username, "exact": "true"}).json()
        if found:
            user_id = found[0]["id"]
            self._call("PUT", f"/users/{user_id}", json=body)
        else:
            created = self._call("POST", "/users", json=body)
            user_id = created.headers["location"].rstrip("/").rsplit("/", 1)[1]
        self._call("PUT", f"/users/{user_id}/reset-password",
                   json={"type": "password", "value": password or f"{username}-pass", "temporary": False})
        mapped = {r["name"]: r for r in self._call("GET", f"/users/{user_id}/role-mappings/realm").json()}
        extra = [r for name, r in mapped.items() if name in ROLES and name not in roles]
        if extra:
            self._call("DELETE", f"/users/{user_id}/role-mappings/realm", json=extra)
        missing = [self._call("GET", f"/roles/{name}").json() for name in roles if name not in mapped]
        if missing:
            self._call("POST", f"/users/{user_id}/role-mappings/realm", json=missing)
        return User(user_id, username, email, sorted(roles), str(city_id) if city_id else None)

    def _client(self, client_id: str) -> dict:
        [client] = self._call("GET", "/clients", params={"clientId": client_id}).json() or [None]
        if client is None:
            raise AdminError(f"realm {self.realm} has no client {client_id!r}; is realm-icc.json imported?")
        return client

    def allow_redirect(self, base_url: str, client_id: str = "icc-web", *, allowed: bool = True) -> None:
        """Allow (or stop allowing) `base_url`/auth/callback as a login redirect and `base_url`/* after
        logout: for a page served on a port the realm file does not list."""
        client = self._client(client_id)
        callback = f"{base_url}/auth/callback"
        redirects = [u for u in client.get("redirectUris", []) if u != callback] + ([callback] if allowed else [])
        after_logout = [u for u in client.get("attributes", {}).get("post.logout.redirect.uris", "").split("##") if u]
        after_logout = [u for u in after_logout if u != f"{base_url}/*"] + ([f"{base_url}/*"] if allowed else [])
        client["redirectUris"] = redirects
        client.setdefault("attributes", {})["post.logout.redirect.uris"] = "##".join(after_logout)
        self._call("PUT", f"/clients/{client['id']}", json=client)
