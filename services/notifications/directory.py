"""Who speaks for a city besides the contact its application gave: the identity provider's directory.

Behind one small interface so that the consumer needs no Keycloak in tests; the platform's is
Keycloak's admin REST API (users holding realm role city_coordinator whose attribute city_id is the
city's). Unset (DIRECTORY_URL): the application's contact alone."""

import logging
from typing import Protocol
from uuid import UUID

import httpx

log = logging.getLogger("icc.notifications.directory")


class Directory(Protocol):
    async def coordinators(self, city_id: UUID) -> list[str]: ...


class NoDirectory:
    async def coordinators(self, city_id: UUID) -> list[str]:
        return []


class KeycloakDirectory:
    def __init__(self, url: str, username: str, password: str, realm: str = "icc") -> None:
        self.url, self.username, self.password, self.realm = url.rstrip("/"), username, password, realm

    async def coordinators(self, city_id: UUID) -> list[str]:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            token = (await client.post("/realms/master/protocol/openid-connect/token", data={
                "grant_type": "password", "client_id": "admin-cli", "username": self.username, "password": self.password,
            })).raise_for_status().json()["access_token"]
            users = (await client.get(f"/admin/realms/{self.realm}/roles/city_coordinator/users",
                                      params={"max": 1000, "briefRepresentation": "false"},
                                      headers={"Authorization": f"Bearer {token}"})).raise_for_status().json()
        return sorted({user["email"].lower() for user in users
                       if user.get("email") and str(city_id) in (user.get("attributes") or {}).get("city_id", [])})


async def city_addresses(directory: Directory, city_id: UUID, contact: str | None) -> list[str]:
    """The contact and the city's coordinators. A directory that does not answer leaves the contact
    alone (logged): a mail to fewer people beats a fact that cannot be applied."""
    found = {contact.lower()} if contact else set()
    try:
        found.update(address.lower() for address in await directory.coordinators(city_id))
    except Exception as err:
        log.warning("directory not reachable; writing to the city's contact only", extra={"city_id": str(city_id), "error": repr(err)})
    return sorted(found)
