"""Receipts uploaded as files, claim lines that name them, and the quote, over HTTP on SQLite and
PostgreSQL (no broker): what is accepted and served back, what is refused (and then nothing is
kept), who may read a receipt, and a quote that prices exactly as the submission and stores nothing."""

import asyncio
import hashlib
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from services.common.api import today
from services.travel.app import build_app
from services.travel.db import receipts as receipts_table
from services.travel.settings import TravelSettings
from tests.identity import STAND_IN
from tests.integration.test_travel_claims import NO_BROKER, World, claim_body
from tests.support import running

LIMIT = 64 * 1024  # RECEIPT_MAX_BYTES for these tests
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(range(256)) + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
HTML = b"<!doctype html><html><body><script>fetch('/claims').then(r => r.text()).then(alert)</script></body></html>"


class Receipts(World):
    """Travel, a European city (Ghent) with two delegates of one workshop, and their tokens."""

    async def count(self) -> int:
        async with self.runtime.sessions() as session:
            return await session.scalar(select(func.count()).select_from(receipts_table))

    async def ready(self) -> "Receipts":
        self.ghent = await self.city()
        self.workshop_id = await self.workshop()
        self.ana_registration = await self.registration(self.workshop_id, self.ghent, email="ana@ghent.be")
        self.eva_registration = await self.registration(self.workshop_id, self.ghent, email="eva@ghent.be", funded=False)
        self.ana = STAND_IN.bearer("delegate", username="ana", email="Ana@Ghent.be", city_id=self.ghent)
        self.eva = STAND_IN.bearer("delegate", username="eva", email="eva@ghent.be", city_id=self.ghent)
        self.coordinator = STAND_IN.bearer("city_coordinator", username="gert", email="gert@ghent.be", city_id=self.ghent)
        return self

    async def upload(self, content: bytes, headers: dict, *, name="receipt.pdf", declared="application/pdf", **fields):
        return await self.client.post("/receipts", files={"file": (name, content, declared)}, data=fields, headers=headers)


@pytest.fixture
async def travel(databases):
    app = build_app(TravelSettings(**NO_BROKER, **databases("travel"), RECEIPT_MAX_BYTES=str(LIMIT)))
    async with running(app) as client:
        assert (await client.put("/allowance-rates/PT", json={"eur_per_night": "155.00", "valid_from": "2025-01-01"})).status_code == 200
        on = (today() - timedelta(days=10)).isoformat()
        assert (await client.put("/exchange-rates/NOK", json={"units_per_eur": "11.4500", "on": on})).status_code == 200
        yield await Receipts(client, app.state.runtime).ready()


# --- upload and download ------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "content_type", "extension"), [
    (PDF, "application/pdf", "pdf"), (JPEG, "image/jpeg", "jpg"), (PNG, "image/png", "png"),
])
async def test_an_accepted_file_comes_back_byte_for_byte_with_its_checksum(travel, content, content_type, extension) -> None:
    # the declared type and name are the client's word: the content decides
    uploaded = await travel.upload(content, travel.ana, name="../scans/ticket.bin", declared="application/octet-stream")
    assert uploaded.status_code == 201, uploaded.text
    receipt = uploaded.json()
    assert {key: receipt[key] for key in ("sha256", "content_type", "size", "filename")} == {
        "sha256": hashlib.sha256(content).hexdigest(), "content_type": content_type, "size": len(content), "filename": "ticket.bin",
    }

    served = await travel.client.get(f"/receipts/{receipt['id']}", headers=travel.ana)
    assert served.status_code == 200
    assert served.content == content and hashlib.sha256(served.content).hexdigest() == receipt["sha256"]
    assert served.headers["content-type"] == content_type
    assert served.headers["content-disposition"] == f'attachment; filename="receipt-{receipt["id"]}.{extension}"'
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'"
    assert (await travel.client.get(f"/receipts/{receipt['id']}/meta", headers=travel.ana)).json() == receipt

    # the same bytes again, by the same delegate: the receipt already kept
    again = await travel.upload(content, travel.ana, name="other name.pdf")
    assert (again.status_code, again.json()) == (200, receipt)
    assert await travel.count() == 1


async def test_the_same_file_twice_at_once_is_kept_once_and_another_delegate_s_copy_is_theirs(travel) -> None:
    answers = await asyncio.gather(*(travel.upload(PDF, travel.ana) for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    eva_copy = await travel.upload(PDF, travel.eva)
    assert eva_copy.status_code == 201 and eva_copy.json()["id"] != answers[0].json()["id"]
    assert await travel.count() == 2


async def test_html_named_receipt_pdf_and_declared_as_pdf_is_refused_and_nothing_kept(travel) -> None:
    for content in (HTML, b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", b"MZ\x90\x00" + b"\x00" * 60,
                    b"GIF89a\x01\x00\x01\x00", b"  %PDF-1.7 leading junk"):
        refused = await travel.upload(content, travel.ana, name="receipt.pdf", declared="application/pdf")
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert (body["code"], body["field"]) == ("receipt_type", "file")
        assert "PDF, JPEG and PNG" in body["detail"]
    assert await travel.count() == 0


async def test_too_large_or_empty_is_refused_and_nothing_kept(travel) -> None:
    at_limit = PDF + b"\n" * (LIMIT - len(PDF))
    too_large = await travel.upload(at_limit + b"\n", travel.ana)
    assert too_large.status_code == 422
    assert (too_large.json()["code"], too_large.json()["field"]) == ("receipt_too_large", "file")
    assert "64 KiB" in too_large.json()["detail"]
    empty = await travel.upload(b"", travel.ana)
    assert (empty.status_code, empty.json()["code"]) == (422, "receipt_empty")
    assert await travel.count() == 0
    assert (await travel.upload(at_limit, travel.ana)).status_code == 201  # exactly the limit is accepted


async def test_a_huge_body_is_refused_after_reading_little_of_it(travel) -> None:
    """Sent chunked (no Content-Length): the service stops reading once past the limit."""
    sent = 0
    boundary = "receipt-boundary"

    async def body():
        nonlocal sent
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
                "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n").encode()
        sent += len(head)
        yield head
        for _ in range(1600):  # 100 MiB, if it were all read
            sent += 65536
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    refused = await travel.client.post("/receipts", content=body(), headers={
        **travel.ana, "content-type": f"multipart/form-data; boundary={boundary}"})
    assert (refused.status_code, refused.json()["code"]) == (422, "receipt_too_large")
    assert sent < 4 * LIMIT, f"{sent} bytes were read before the refusal"
    # said up front: refused before a byte of the body is read
    declared = await travel.client.post("/receipts", content=b"", headers={
        **travel.ana, "content-type": f"multipart/form-data; boundary={boundary}", "content-length": str(10**9)})
    assert declared.json()["code"] == "receipt_too_large"
    assert await travel.count() == 0


async def test_a_body_that_is_not_a_multipart_form_with_a_file_is_a_422(travel) -> None:
    cases = [
        (await travel.client.post("/receipts", json={"file": "JVBERi0="}, headers=travel.ana), "multipart_expected"),
        (await travel.client.post("/receipts", data={"note": "no file"}, files={"other": ("x.pdf", PDF)}, headers=travel.ana),
         "receipt_missing"),
        (await travel.client.post("/receipts", content=b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n%PDF-",
                                  headers={**travel.ana, "content-type": "multipart/form-data; boundary=b"}), "upload_malformed"),
        (await travel.upload(PDF, travel.ana, city_id="not-a-uuid"), "invalid_city_id"),
        (await travel.upload(PDF, travel.ana, delegate_email="nobody"), "invalid_email"),
    ]
    for response, code in cases:
        assert (response.status_code, response.json()["code"]) == (422, code), response.text
    assert await travel.count() == 0


# --- who may upload for whom, and who may read --------------------------------------------------


async def test_a_coordinator_uploads_for_their_city_s_delegate_and_a_delegate_only_for_themselves(travel) -> None:
    for_ana = await travel.upload(PNG, travel.coordinator, delegate_email="ana@ghent.be")
    assert for_ana.status_code == 201, for_ana.text
    # it is Ana's: she reads it, and her claim may name it
    assert (await travel.client.get(f"/receipts/{for_ana.json()['id']}", headers=travel.ana)).status_code == 200
    not_hers = await travel.upload(PDF, travel.eva, delegate_email="ana@ghent.be")
    assert (not_hers.status_code, not_hers.json()["code"]) == (403, "not_yours")
    other_city = await travel.upload(PDF, travel.coordinator, delegate_email="ben@montreal.ca", city_id=str(uuid4()))
    assert other_city.status_code == 403
    no_city = STAND_IN.bearer("delegate", username="dora", email="dora@nowhere.example")
    assert (await travel.upload(PDF, no_city)).json()["code"] == "receipt_owner"
    assert await travel.count() == 1


async def test_a_receipt_is_read_by_its_delegate_their_coordinator_and_finance_else_it_is_not_found(travel) -> None:
    receipt = (await travel.upload(PDF, travel.ana)).json()["id"]
    allowed = {
        "ana": travel.ana,
        "coordinator": travel.coordinator,
        "finance": STAND_IN.bearer("finance", username="fiona"),
        "auditor": STAND_IN.bearer("auditor", username="audrey"),
        "secretariat": STAND_IN.bearer("secretariat", username="sam"),
    }
    for who, headers in allowed.items():
        served = await travel.client.get(f"/receipts/{receipt}", headers=headers)
        assert (who, served.status_code, served.content) == (who, 200, PDF)
    out_of_scope = {
        "eva": travel.eva,
        "another city's coordinator": STAND_IN.bearer("city_coordinator", username="carl", city_id=uuid4()),
        "ana in another city": STAND_IN.bearer("delegate", username="ana2", email="ana@ghent.be", city_id=uuid4()),
    }
    missing = await travel.client.get(f"/receipts/{uuid4()}", headers=travel.eva)
    assert (missing.status_code, missing.json()["code"]) == (404, "no_receipt")
    for who, headers in out_of_scope.items():
        for path in (f"/receipts/{receipt}", f"/receipts/{receipt}/meta"):
            refused = await travel.client.get(path, headers=headers)
            assert (who, refused.status_code, refused.json()) == (who, 404, {
                "detail": f"no receipt with id {receipt}", "code": "no_receipt"})
    organiser = await travel.client.get(f"/receipts/{receipt}", headers=STAND_IN.bearer("organiser"))
    assert organiser.status_code == 403


# --- claim lines naming a receipt ---------------------------------------------------------------


def with_receipt(registration_id, receipt_id, **kwargs) -> dict:
    body = claim_body(registration_id, receipt=None, **kwargs)
    body["lines"][0]["receipt_id"] = str(receipt_id)
    return body


async def test_a_claim_line_names_the_delegate_s_own_receipt_as_proof_of_payment(travel) -> None:
    receipt = (await travel.upload(PDF, travel.ana)).json()["id"]
    claim = await travel.client.post("/claims", json=with_receipt(travel.ana_registration, receipt), headers=travel.ana)
    assert claim.status_code == 201, claim.text
    transport = claim.json()["lines"][0]
    assert (transport["receipt_id"], transport["receipt"], transport["coe_funded"]) == (receipt, None, "400.00")
    assert claim.json()["blocked"] == "0.00"  # the file is the proof
    assert [line["receipt_id"] for line in claim.json()["lines"][1:]] == [None, None]
    assert (await travel.client.get(f"/claims/{claim.json()['id']}", headers=travel.ana)).json() == claim.json()


async def test_a_claim_naming_another_s_or_an_unknown_receipt_is_refused_naming_the_line(travel) -> None:
    eva_receipt = (await travel.upload(JPEG, travel.eva)).json()["id"]
    for receipt_id in (eva_receipt, uuid4()):
        for path, headers in (("/claims", travel.ana), ("/claims", travel.coordinator), ("/claims/quote", travel.ana)):
            refused = await travel.client.post(path, json=with_receipt(travel.ana_registration, receipt_id), headers=headers)
            assert refused.status_code == 422, refused.text
            body = refused.json()
            assert (body["code"], body["field"]) == ("receipt_unknown", "lines[0].receipt_id")
            assert body["detail"].startswith("line 1 (transport, 4580.00 NOK") and str(receipt_id) in body["detail"]
    assert (await travel.claims(), await travel.outbox()) == (0, [])

    # an amendment is checked alike, and changes nothing
    claim = (await travel.client.post("/claims", json=claim_body(travel.ana_registration), headers=travel.ana)).json()
    amendment = with_receipt(travel.ana_registration, eva_receipt)
    del amendment["registration_id"]
    refused = await travel.client.post(f"/claims/{claim['id']}/amendment", json=amendment, headers=travel.ana)
    assert (refused.status_code, refused.json()["field"]) == (422, "lines[0].receipt_id")
    assert (await travel.client.get(f"/claims/{claim['id']}")).json() == claim
    assert len(await travel.outbox()) == 1


async def test_expert_visit_lines_take_no_receipt_id(travel) -> None:
    body = {"city_id": str(travel.ghent), "visit_date": today().isoformat(), "lines": [
        {"kind": "transport", "amount": "100.00", "currency": "EUR", "spent_on": today().isoformat(), "receipt_id": str(uuid4())}]}
    visit = await travel.client.post("/expert-visits", json=body)
    assert visit.status_code == 201, visit.text
    assert visit.json()["lines"][0]["receipt_id"] is None and visit.json()["blocked"] == "100.00"


# --- the quote ----------------------------------------------------------------------------------


async def test_a_quote_prices_as_the_submission_does_and_stores_nothing(travel) -> None:
    receipt = (await travel.upload(PDF, travel.ana)).json()["id"]
    body = with_receipt(travel.ana_registration, receipt)
    body["lines"].append({"kind": "transport", "amount": "35.00", "currency": "EUR", "spent_on": today().isoformat()})  # no proof
    quote = await travel.client.post("/claims/quote", json=body, headers=travel.ana)
    assert quote.status_code == 200, quote.text
    assert (await travel.claims(), await travel.outbox()) == (0, [])
    assert (await travel.client.get("/claims", headers=travel.ana)).json() == []
    assert "id" not in quote.json() and "status" not in quote.json()

    submitted = (await travel.client.post("/claims", json=body, headers=travel.ana)).json()
    quoted = quote.json()
    assert quoted["lines"] == submitted["lines"]
    for key in ("registration_id", "city_id", "european", "funded", "funding", "claimed", "coe_funded", "city_borne", "blocked"):
        assert quoted[key] == submitted[key], key
    assert (quoted["coe_funded"], quoted["blocked"], quoted["priced_on"]) == ("1002.50", "35.00", today().isoformat())


async def test_a_quote_refuses_exactly_as_submitting_would(travel) -> None:
    waitlisted = await travel.registration(travel.workshop_id, travel.ghent, email="wim@ghent.be", status="waitlisted", funded=False)
    cases = [
        (claim_body(waitlisted), {}),  # 409 waitlisted
        (claim_body(travel.eva_registration), travel.ana),  # another's registration: 404
        (claim_body(uuid4()), {}),  # not yet known: 409 retryable
        (claim_body(travel.ana_registration, currency="ISK"), {}),  # 422 rate_missing
        ({**claim_body(travel.ana_registration), "nights": -1}, {}),  # 422 from the shape
    ]
    for body, headers in cases:
        quoted = await travel.client.post("/claims/quote", json=body, headers=headers)
        submitted = await travel.client.post("/claims", json=body, headers=headers)
        assert quoted.status_code >= 400 and (quoted.status_code, quoted.json()) == (submitted.status_code, submitted.json())
        assert quoted.headers.get("retry-after") == submitted.headers.get("retry-after")
    # once claimed, a quote says what a second submission would
    assert (await travel.client.post("/claims", json=claim_body(travel.ana_registration), headers=travel.ana)).status_code == 201
    again = await travel.client.post("/claims/quote", json=claim_body(travel.ana_registration), headers=travel.ana)
    assert (again.status_code, again.json()["code"]) == (409, "already_claimed")
    assert await travel.claims() == 1
