"""`make demo`: load a realistic network year through the public APIs while `make up` runs.

About 140 cities in Europe and beyond apply and most of them join, a dozen network events are
scheduled, a few hundred delegates register and claim their travel, expert visits are costed,
the budget is set and cities pay their contributions — so the finance dashboard shows a living
network. Only the public HTTP APIs are used (the same ones people use); the demo waits, with a
deadline, where one service must first learn a fact from another's events.
"""

import argparse
import asyncio
import csv
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from services.common.settings import LOCAL_ISSUER

CITIES_FILE = Path(__file__).with_name("cities.csv")
# Illustrative allowance rates (the values travel's first release seeded; not reference data):
# the demo loads them through travel's API, as finance staff load the real ones.
ALLOWANCE_RATES_FILE = Path(__file__).resolve().parents[2] / "services" / "travel" / "data" / "allowance_rates.csv"
URLS = {"membership": "http://127.0.0.1:8001", "events": "http://127.0.0.1:8002",
        "travel": "http://127.0.0.1:8003", "finance": "http://127.0.0.1:8004"}


class Progress:
    """A one-line progress bar on stderr: what is being loaded, how far, how long."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def show(self, stage: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done:>4}/{total:<4} {stage:<32} {elapsed:5.1f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class Demo:
    def __init__(self, client: httpx.AsyncClient, year: int, seed: int) -> None:
        self.http = client
        self.year = year
        self.random = random.Random(seed)
        self.progress = Progress()
        self.today = datetime.now(UTC).date()

    async def call(self, method: str, service: str, path: str, *, retry_for: float = 30.0, **kwargs: Any) -> httpx.Response:
        """Call a service; a 409 marked retryable (a fact not yet consumed) is retried with a deadline."""
        deadline = time.monotonic() + retry_for
        delay = 0.1
        while True:
            response = await self.http.request(method, URLS[service] + path, **kwargs)
            if response.status_code == 401:  # the access token expired (5 minutes): a fresh one, once
                self.http.headers["authorization"] = f"Bearer {await demo_token(self.http)}"
                response = await self.http.request(method, URLS[service] + path, **kwargs)
            retryable = response.status_code == 409 and response.headers.get("content-type", "").startswith("application/json") \
                and response.json().get("retryable")
            if not retryable or time.monotonic() > deadline:
                return response
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def gather(self, stage: str, jobs: list, limit: int = 8) -> list:
        semaphore = asyncio.Semaphore(limit)
        done = 0
        self.progress.show(stage, 0, len(jobs))

        async def run(job):
            nonlocal done
            async with semaphore:
                result = await job
            done += 1
            self.progress.show(stage, done, len(jobs))
            return result

        return await asyncio.gather(*(run(j) for j in jobs))

    # --- the year -----------------------------------------------------------------------

    async def load_allowance_rates(self) -> None:
        rows = list(csv.DictReader(ALLOWANCE_RATES_FILE.open(encoding="utf-8")))

        async def one(row: dict) -> None:
            body = {"eur_per_night": row["eur_per_night"], "valid_from": row["valid_from"]}
            check(await self.call("PUT", "travel", f"/allowance-rates/{row['country']}", json=body), f"the {row['country']} allowance rate")

        await self.gather("allowance rates loaded", [one(r) for r in rows])

    async def set_budget(self) -> None:
        lines = {"administration": "600000.00", "delegate_travel": "125000.00", "expert_visits": "60000.00",
                 "index_analysis": "80000.00", "events": "150000.00"}
        response = await self.call("PUT", "finance", f"/budgets/{self.year}", json={"lines": lines})
        check(response, "setting the budget")

    async def apply_and_join(self) -> list[dict]:
        rows = list(csv.DictReader(CITIES_FILE.open(encoding="utf-8")))

        async def one(row: dict) -> dict:
            body = {"name": row["name"], "country": row["country"], "population": int(row["population"]),
                    "foreign_born_share": row["foreign_born_share"]}
            city = check(await self.call("POST", "membership", "/cities", json=body), f"applying {row['name']}").json()
            if self.random.random() < 0.88:  # most applicants go on to sign both documents
                statement = self.sign_date()
                agreement = min(statement + timedelta(days=self.random.randint(0, 40)), self.today)
                check(await self.call("POST", "membership", f"/cities/{city['id']}/statement-of-intent",
                                      json={"signed_on": statement.isoformat()}), "statement of intent")
                city = check(await self.call("POST", "membership", f"/cities/{city['id']}/financial-agreement",
                                             json={"signed_on": agreement.isoformat()}), "financial agreement").json()
            return city

        return await self.gather("cities apply and join", [one(r) for r in rows])

    def sign_date(self) -> date:
        start = date(self.year, 1, 5)
        span = max((self.today - start).days - 40, 1)
        return start + timedelta(days=self.random.randint(0, span))

    async def schedule_events(self, cities: list[dict]) -> list[dict]:
        kinds = ["thematic_workshop", "study_visit", "high_level_meeting"]
        hosts = [c for c in cities if c["status"] == "member" and c["european"]]
        events = []
        # Registration stays open until an event's last day and claims open on its first day, so
        # most events are under way today (delegates register and claim); a few lie ahead.
        for i, offset in enumerate([-4, -3, -3, -2, -2, -1, -1, 0, 12, 30, 55, 80]):
            host = self.random.choice(hosts)
            starts = self.today + timedelta(days=offset)
            length = max(-offset, 0) + self.random.choice([1, 2, 3])
            events.append({
                "title": f"{['Intercultural schools', 'Anti-rumours strategies', 'Welcoming newcomers', 'Public space and interaction', 'Intercultural competence in public services', 'Inclusive business'][i % 6]} — {host['name']}",
                "kind": kinds[i % 3], "host_city": host["name"], "host_country": host["country"],
                "starts_on": starts.isoformat(), "ends_on": (starts + timedelta(days=length - 1)).isoformat(),
                "capacity": self.random.choice([25, 30, 40, 60]), "funded_quota_per_city": 1,
            })
        return await self.gather("events scheduled", [self._schedule(e) for e in events])

    async def _schedule(self, event: dict) -> dict:
        return check(await self.call("POST", "events", "/workshops", json=event), f"scheduling {event['title']}").json()

    async def known_to_events(self, cities: list[dict]) -> None:
        """Wait (with a deadline) until events has consumed every member's CityJoined: until then it
        knows a city as an applicant, and refuses its delegates."""

        async def one(city: dict) -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if (await self.call("GET", "events", f"/member-cities/{city['id']}")).json().get("member"):
                    return
                await asyncio.sleep(0.2)
            raise SystemExit(f"\nevents has not learnt within 30s that {city['name']} joined: is the broker up? see .local/logs/events.log")

        await self.gather("events learns the members", [one(c) for c in cities if c["status"] == "member"])

    async def register(self, cities: list[dict], events: list[dict]) -> list[tuple[dict, dict, dict]]:
        members = [c for c in cities if c["status"] == "member"]
        jobs = []
        for event in events:
            for city in self.random.sample(members, k=min(len(members), self.random.randint(18, 34))):
                for n in range(self.random.choice([1, 1, 1, 2])):  # some cities send two delegates
                    jobs.append(self._register(event, city, n))
        results = await self.gather("delegates register", jobs)
        return [r for r in results if r is not None]

    async def _register(self, event: dict, city: dict, n: int):
        slug = "".join(ch for ch in city["name"].lower() if ch.isalnum())
        body = {"city_id": city["id"], "delegate_name": f"Delegate {n + 1} of {city['name']}",
                "delegate_email": f"delegate{n + 1}@{slug}.example"}
        response = await self.call("POST", "events", f"/workshops/{event['id']}/registrations", json=body)
        if response.status_code != 201:
            return None  # e.g. the city has just left: the refusal is part of the story
        return event, city, response.json()

    async def claim(self, registrations: list) -> list[dict]:
        jobs = []
        for event, city, registration in registrations:
            starts, ends = date.fromisoformat(event["starts_on"]), date.fromisoformat(event["ends_on"])
            if registration["status"] != "registered" or starts > self.today or self.random.random() < 0.2:
                continue
            jobs.append(self._claim(event, registration, starts, ends))
        return [c for c in await self.gather("travel claims", jobs) if c]

    async def _claim(self, event: dict, registration: dict, starts: date, ends: date):
        nights = (ends - starts).days + self.random.choice([0, 1, 1])
        lines = [{"kind": "transport", "amount": f"{self.random.randint(90, 650)}.{self.random.randint(0, 99):02d}",
                  "currency": "EUR", "spent_on": (starts - timedelta(days=20)).isoformat(), "receipt": "e-ticket.pdf"}]
        if self.random.random() < 0.4:
            lines.append({"kind": "local_transport", "amount": f"{self.random.randint(8, 60)}.00", "currency": "EUR",
                          "spent_on": starts.isoformat(), "receipt": "receipt.jpg"})
        if self.random.random() < 0.1:
            lines.append({"kind": "visa", "amount": "80.00", "currency": "EUR", "spent_on": (starts - timedelta(days=30)).isoformat(),
                          "receipt": "visa.pdf"})
        body = {"registration_id": registration["id"], "nights": nights, "travel_days_without_night": self.random.choice([0, 0, 1]),
                "lines": lines}
        response = await self.call("POST", "travel", "/claims", json=body)
        return response.json() if response.status_code == 201 else None

    async def expert_visits(self, cities: list[dict]) -> None:
        visited = self.random.sample([c for c in cities if c["status"] == "member"], k=10)
        jobs = []
        for city in visited:
            visit = self.today - timedelta(days=self.random.randint(5, 50))
            lines = [{"kind": "transport", "amount": f"{self.random.randint(300, 1400)}.00", "currency": "EUR",
                      "spent_on": (visit - timedelta(days=15)).isoformat(), "receipt": "tickets.pdf"},
                     {"kind": "local_transport", "amount": "45.00", "currency": "EUR", "spent_on": visit.isoformat(), "receipt": "taxi.pdf"}]
            jobs.append(self.call("POST", "travel", "/expert-visits",
                                  json={"city_id": city["id"], "visit_date": visit.isoformat(), "lines": lines}))
        await self.gather("expert visits costed", jobs)

    async def pay(self, cities: list[dict]) -> None:
        members = [c for c in cities if c["status"] == "member"]
        invoices: list[dict] = []

        async def invoices_of(city: dict) -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = (await self.call("GET", "finance", "/invoices", params={"city_id": city["id"]})).json()
                if found:
                    invoices.extend(found)
                    return
                await asyncio.sleep(0.2)

        await self.gather("contribution invoices issued", [invoices_of(c) for c in members])
        jobs = []
        for invoice in invoices:
            luck = self.random.random()
            amount = invoice["amount"]
            if luck < 0.55:
                jobs.append(self._pay(invoice, amount))
            elif luck < 0.7:
                jobs.append(self._pay(invoice, "2500.00"))
            elif luck < 0.73:
                jobs.append(self._pay(invoice, "5250.00"))  # overpaid: kept as a credit
        await self.gather("contributions paid", jobs)

    async def _pay(self, invoice: dict, amount: str) -> None:
        body = {"amount": amount, "paid_on": self.today.isoformat(), "reference": f"BANK-{invoice['id'][:8].upper()}"}
        check(await self.call("POST", "finance", f"/invoices/{invoice['id']}/payments", json=body), "paying an invoice")

    async def settle(self) -> None:
        """The finance unit's side: pay most approved claims, and book the year's other spending."""
        approved = (await self.call("GET", "finance", "/reimbursements", params={"status": "approved", "limit": 1000})).json()
        paid = [c for c in approved if c["amount"] != "0.00" and self.random.random() < 0.6]
        jobs = [self.call("POST", "finance", f"/reimbursements/{c['claim_id']}/payment", json={"paid_on": self.today.isoformat()})
                for c in paid]
        spending = [("administration", "spent", "182000.00", "Secretariat staff, Jan-Oct"),
                    ("administration", "commitment", "36000.00", "Secretariat staff, Nov-Dec"),
                    ("index_analysis", "spent", "31500.00", "INDEX analyses, first batch"),
                    ("index_analysis", "commitment", "24000.00", "INDEX analyses, second batch"),
                    ("events", "spent", "64000.00", "Venues and interpretation"),
                    ("events", "commitment", "52000.00", "Annual ICC network meeting")]
        jobs += [self.call("POST", "finance", f"/budgets/{self.year}/spending",
                           json={"budget_line": line, "kind": kind, "amount": amount, "reference": reference})
                 for line, kind, amount, reference in spending]
        await self.gather("claims paid, spending booked", jobs)

    async def run(self) -> None:
        await self.load_allowance_rates()
        await self.set_budget()
        cities = await self.apply_and_join()
        events = await self.schedule_events(cities)
        await self.known_to_events(cities)
        registrations = await self.register(cities, events)
        claims = await self.claim(registrations)
        await self.expert_visits(cities)
        await self.pay(cities)
        await self.settle()
        members = sum(c["status"] == "member" for c in cities)
        print(f"\nloaded: {len(cities)} cities ({members} members), {len(events)} events, "
              f"{len(registrations)} registrations, {len(claims)} claims, 10 expert visits")
        print(f"dashboard: {URLS['finance']}/dashboard")
        people_for_the_portal(claims, cities)


def people_for_the_portal(claims: list[dict], cities: list[dict]) -> None:
    """A delegate who has claims and their city's coordinator, as people who sign in to the portal
    (the realm file's people hold network-wide roles; a city's people need the city's id)."""
    from deploy.keycloak.admin import AdminError, KeycloakAdmin
    from deploy.keycloak.local import LocalKeycloak

    if not claims:
        return
    claim = claims[0]
    city = next(c for c in cities if c["id"] == str(claim["city_id"]))
    try:
        with KeycloakAdmin(os.environ.get("KEYCLOAK_URL") or LocalKeycloak().url) as admin:
            admin.upsert_user("delegate", claim["delegate_email"], ["delegate"], city_id=claim["city_id"], password="delegate-pass",
                              first_name=claim["delegate_name"])
            admin.upsert_user("coordinator", f"coordinator@{claim['delegate_email'].split('@')[1]}", ["city_coordinator"],
                              city_id=claim["city_id"], password="coordinator-pass")
    except (AdminError, httpx.HTTPError, OSError) as err:
        print(f"(the portal's demo delegate was not created: {err}; the realm's staff can still sign in)", file=sys.stderr)
        return
    print(f"portal: http://127.0.0.1:8000/ — sign in as delegate / delegate-pass ({claim['delegate_name']}) or "
          f"coordinator / coordinator-pass ({city['name']}), or as secretariat, organiser, finance (README)")


def check(response: httpx.Response, doing: str) -> httpx.Response:
    if response.status_code >= 400:
        raise SystemExit(f"\ndemo stopped while {doing}: {response.status_code} {response.text[:300]}")
    return response


async def demo_token(http: httpx.AsyncClient) -> str:
    """An access token of the local demo user `demo-loader` (password grant of the public client icc-cli)."""
    issuer = f"{os.environ['KEYCLOAK_URL'].rstrip('/')}/realms/icc" if os.environ.get("KEYCLOAK_URL") else LOCAL_ISSUER
    answer = await http.post(f"{issuer}/protocol/openid-connect/token", data={
        "grant_type": "password", "client_id": "icc-cli", "username": "demo-loader", "password": "demo-loader-pass"})
    if answer.status_code != 200:
        raise SystemExit(f"cannot sign in as demo-loader at {issuer} ({answer.status_code} {answer.text[:200]}): is Keycloak "
                         f"running (`make up` starts it) with the realm of deploy/keycloak/realm-icc.json?")
    return answer.json()["access_token"]


async def main() -> None:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    async with httpx.AsyncClient(timeout=30) as client:
        for service, url in URLS.items():
            try:
                ready = (await client.get(f"{url}/ready")).status_code == 200
            except httpx.HTTPError:
                ready = False
            if not ready:
                raise SystemExit(f"{service} is not ready at {url}: start the platform with `make up` (in another terminal) first")
        # The demo acts as the network's people: one local demo user holds every role (realm file).
        client.headers["authorization"] = f"Bearer {await demo_token(client)}"
        print("loading a network year through the public APIs, signed in as demo-loader ...", file=sys.stderr)
        await Demo(client, datetime.now(UTC).year, args.seed).run()


if __name__ == "__main__":
    asyncio.run(main())
