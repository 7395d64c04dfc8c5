"""The secretariat's pages over membership and travel running in this process (SQLite and
PostgreSQL): each write through its form, and a refusal of each shown next to its field."""

import itertools
from datetime import date, timedelta
from uuid import UUID

import pytest
from aiokafka.structs import ConsumerRecord

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined
from services.common.api import today
from services.membership import index
from services.membership.app import build_app as build_membership
from services.membership.settings import MembershipSettings
from services.travel.app import build_app as build_travel
from services.travel.settings import TravelSettings
from tests.portal import portal_over, text_of
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # no broker: travel is told of joinings by hand
OSLO = {"name": "Oslo", "country": "NO", "population": "709000", "foreign_born_share": "0.28", "contact": "icc@oslo.kommune.no"}
offsets = itertools.count()


class Stage:
    def __init__(self, portal, membership, travel_runtime):
        self.portal, self.membership, self.travel_runtime = portal, membership, travel_runtime

    async def apply(self, **overrides: str) -> str:
        answer = await self.portal.form("/secretariat/cities", {**OSLO, **overrides})
        assert answer.status_code == 303, text_of(answer.text)
        return answer.headers["location"].rsplit("/", 1)[1]

    async def sign(self, city_id: str, document: str, on: str):
        return await self.portal.form(f"/secretariat/cities/{city_id}/{document}", {"signed_on": on})

    async def member(self, **overrides: str) -> str:
        city_id = await self.apply(**overrides)
        assert (await self.sign(city_id, "statement-of-intent", "2026-02-01")).status_code == 303
        assert (await self.sign(city_id, "financial-agreement", "2026-03-15")).status_code == 303
        return city_id

    async def page(self, path: str) -> str:
        answer = await self.portal.get(path)
        assert answer.status_code == 200, text_of(answer.text)
        return text_of(answer.text)

    async def tell_travel(self, city_id: str) -> None:
        """What membership's CityJoined would bring travel over the broker."""
        event = CityJoined(city_id=UUID(city_id), name="Oslo", country="NO", european=True, joined_on=date(2026, 3, 15))
        envelope = wrap(event, service="membership")
        record = ConsumerRecord(event.topic.value, 0, next(offsets), 0, 0, envelope.key.encode(), to_value(envelope), None, 0, 0,
                                to_headers(envelope))
        outcome = await self.travel_runtime.consumer.apply([record])
        assert outcome.dead_lettered == []


@pytest.fixture
async def stage(databases):
    membership_app = build_membership(MembershipSettings(**NO_BROKER, **databases("membership")))
    travel_app = build_travel(TravelSettings(**NO_BROKER, **databases("travel")))
    async with running(membership_app) as membership, running(travel_app):
        async with portal_over({"membership": membership_app, "travel": travel_app}) as portal:
            portal.sign_in("secretariat", username="sam")
            yield Stage(portal, membership, travel_app.state.runtime)


def best_answers() -> dict[str, str]:
    v1 = index.questionnaire(1)
    return {f"answers.{q.code}": max(q.options, key=q.options.get) for a in v1.areas if a.core for q in a.questions}


async def test_a_city_goes_from_application_to_member_through_the_pages(stage) -> None:
    city_id = await stage.apply()
    page = await stage.page(f"/secretariat/cities/{city_id}")
    assert "The application of Oslo is recorded." in page
    assert "Statement of intent signed: missing" in page and "Member of the network: missing" in page
    assert "Norway" in page and "709,000" in page

    signed = await stage.sign(city_id, "statement-of-intent", "2026-02-01")
    assert signed.status_code == 303 and signed.headers["location"] == f"/secretariat/cities/{city_id}"
    page = await stage.page(f"/secretariat/cities/{city_id}")
    assert "Statement of intent signed on Feb 1, 2026." in page and "Statement of intent signed: done (Feb 1, 2026)" in page
    assert (await stage.membership.get(f"/cities/{city_id}")).json()["status"] == "applicant"

    assert (await stage.sign(city_id, "financial-agreement", "2026-03-15")).status_code == 303
    page = await stage.page(f"/secretariat/cities/{city_id}")
    assert "Oslo is now a member of the network." in page and "Member of the network: done (Mar 15, 2026)" in page
    city = (await stage.membership.get(f"/cities/{city_id}")).json()
    assert (city["status"], city["statement_signed_on"], city["agreement_signed_on"]) == ("member", "2026-02-01", "2026-03-15")

    assert "Oslo" in await stage.page("/secretariat/cities?status=member")
    assert "Oslo" not in await stage.page("/secretariat/cities?status=applicant")


async def test_a_refused_application_is_shown_next_to_its_field_and_writes_nothing(stage) -> None:
    answer = await stage.portal.form("/secretariat/cities", {**OSLO, "country": "ZZ", "population": "0"})
    assert answer.status_code == 422
    assert 'data-testid="error-country"' in answer.text and 'data-testid="error-population"' in answer.text
    assert 'value="Oslo"' in answer.text  # the form as it was filled
    assert (await stage.membership.get("/cities")).json() == []

    stage.portal.sign_in("secretariat", username="sam", lang="fr")  # the same refusal, in French
    answer = await stage.portal.form("/secretariat/cities", {**OSLO, "population": "0"})
    assert 'data-testid="error-population"' in answer.text and "Certains champs sont à corriger." in text_of(answer.text)


async def test_signatures_refused_in_the_future_or_twice_say_so_beside_the_form(stage) -> None:
    city_id = await stage.apply()
    future = (today() + timedelta(days=3)).isoformat()
    answer = await stage.sign(city_id, "financial-agreement", future)
    assert answer.status_code == 422
    assert 'data-testid="error-financial_agreement"' in answer.text and 'data-testid="error-statement_of_intent"' not in answer.text
    assert "future" in text_of(answer.text)
    assert (await stage.membership.get(f"/cities/{city_id}")).json()["agreement_signed_on"] is None

    assert (await stage.sign(city_id, "statement-of-intent", "2026-02-01")).status_code == 303
    twice = await stage.sign(city_id, "statement-of-intent", "2026-02-02")
    assert twice.status_code == 409 and 'data-testid="refused"' in twice.text
    assert (await stage.membership.get(f"/cities/{city_id}")).json()["statement_signed_on"] == "2026-02-01"


async def test_a_mistyped_signature_date_is_corrected_with_a_reason(stage) -> None:
    city_id = await stage.member()
    no_reason = await stage.portal.form(f"/secretariat/cities/{city_id}/signature-corrections",
                                        {"document": "financial_agreement", "signed_on": "2026-03-10", "reason": ""})
    assert no_reason.status_code == 422 and 'data-testid="error-reason"' in no_reason.text
    assert 'data-testid="error-statement_of_intent"' not in no_reason.text
    assert (await stage.membership.get(f"/cities/{city_id}")).json()["joined_on"] == "2026-03-15"

    corrected = await stage.portal.form(f"/secretariat/cities/{city_id}/signature-corrections",
                                        {"document": "financial_agreement", "signed_on": "2026-03-10", "reason": "typed 15 for 10"})
    assert corrected.status_code == 303
    page = await stage.page(f"/secretariat/cities/{city_id}")
    assert "Signature date corrected: Oslo is a member since Mar 10, 2026." in page
    assert "Mar 15, 2026 → Mar 10, 2026 (typed 15 for 10" in page
    assert (await stage.membership.get(f"/cities/{city_id}")).json()["joined_on"] == "2026-03-10"


async def test_index_answers_are_checked_queued_and_analysed(stage) -> None:
    city_id = await stage.apply()
    form = await stage.page(f"/secretariat/cities/{city_id}/index-questionnaire")
    assert "Commitment" in form

    partial = {k: v for k, v in best_answers().items() if k != "answers.education.2"}
    refused = await stage.portal.form(f"/secretariat/cities/{city_id}/index-questionnaire", {**partial, "version": "1"})
    assert refused.status_code == 422 and 'data-testid="error-answers.education.2"' in refused.text
    assert (await stage.membership.get("/index-queue")).json() == []

    submitted = await stage.portal.form(f"/secretariat/cities/{city_id}/index-questionnaire", {**best_answers(), "version": "1"})
    assert submitted.status_code == 303
    page = await stage.page(f"/secretariat/cities/{city_id}")
    assert "number 1 in the analysis queue" in page
    assert "ICC INDEX questionnaire answered (recommended first): done" in page
    assert "Oslo" in await stage.page("/secretariat/index-queue")

    analysed = await stage.portal.form("/secretariat/index-queue/analysis", {"analyst": "M. Rossi"})
    assert analysed.status_code == 303 and analysed.headers["location"] == f"/secretariat/cities/{city_id}"
    page = await stage.page(f"/secretariat/cities/{city_id}")
    assert "Analysed: an overall index of 100." in page and "Overall index 100" in page

    empty = await stage.portal.form("/secretariat/index-queue/analysis", {})
    assert empty.status_code == 404 and "queue is empty" in text_of(empty.text)


async def test_a_withdrawal_is_confirmed_and_only_a_member_withdraws(stage) -> None:
    applicant = await stage.apply(name="Bergen")
    refused = await stage.portal.form(f"/secretariat/cities/{applicant}/withdrawal", {"effective_on": "2026-12-31", "confirm": "yes"})
    assert refused.status_code == 409 and "not a member" in text_of(refused.text)

    city_id = await stage.member()
    unconfirmed = await stage.portal.form(f"/secretariat/cities/{city_id}/withdrawal", {"effective_on": "2026-12-31"})
    assert unconfirmed.status_code == 400 and 'data-testid="error-confirm"' in unconfirmed.text
    assert (await stage.membership.get(f"/cities/{city_id}")).json()["left_on"] is None
    before_joining = await stage.portal.form(f"/secretariat/cities/{city_id}/withdrawal",
                                             {"effective_on": "2026-01-01", "confirm": "yes"})
    assert before_joining.status_code == 409 and 'data-testid="error-effective_on"' in before_joining.text

    withdrawn = await stage.portal.form(f"/secretariat/cities/{city_id}/withdrawal", {"effective_on": "2026-12-31", "confirm": "yes"})
    assert withdrawn.status_code == 303
    assert "Oslo withdraws: a member up to and including Dec 31, 2026." in await stage.page(f"/secretariat/cities/{city_id}")
    assert (await stage.membership.get(f"/cities/{city_id}")).json()["left_on"] == "2026-12-31"


async def test_an_expert_visit_is_recorded_in_travel_and_a_refused_line_is_marked_on_its_row(stage) -> None:
    city_id = await stage.member()
    await stage.tell_travel(city_id)
    visit_day = (today() - timedelta(days=5)).isoformat()
    form = {"city_id": city_id, "visit_date": visit_day, "nights": "0", "travellers": "2",
            "lines[1].kind": "transport", "lines[1].amount": "12,50", "lines[1].currency": "EUR", "lines[1].spent_on": visit_day,
            "lines[1].receipt": "SNCF-1"}
    refused = await stage.portal.form("/secretariat/expert-visits", form)
    assert refused.status_code == 422 and 'data-testid="error-lines[1].amount"' in refused.text  # the row filled, not row 0
    assert (await stage.portal.get("/secretariat/expert-visits/new")).status_code == 200

    recorded = await stage.portal.form("/secretariat/expert-visits", {**form, "lines[1].amount": "312.50"})
    assert recorded.status_code == 303 and recorded.headers["location"] == f"/secretariat/expert-visits?city_id={city_id}"
    page = await stage.page(recorded.headers["location"])
    assert "The expert visit to Oslo on" in page and "€312.50" in page
    assert "€312.50" in await stage.page(f"/secretariat/cities/{city_id}")


async def test_the_auditor_reads_the_pages_without_forms_and_cannot_write(stage) -> None:
    city_id = await stage.member()
    stage.portal.sign_in("auditor", username="aud", lang="fr")
    cities = await stage.portal.get("/secretariat/cities")
    assert cities.status_code == 200 and "Oslo" in cities.text and "Enregistrer une candidature" not in cities.text
    page = await stage.portal.get(f"/secretariat/cities/{city_id}")
    assert page.status_code == 200 and "Membre" in text_of(page.text) and "<form method=\"post\" action=\"/secretariat" not in page.text
    assert (await stage.portal.get("/secretariat/index-queue")).status_code == 200
    assert (await stage.portal.get("/secretariat/expert-visits")).status_code == 200
    refused = await stage.portal.form("/secretariat/cities", OSLO)
    assert refused.status_code == 403
    assert len((await stage.membership.get("/cities")).json()) == 1
