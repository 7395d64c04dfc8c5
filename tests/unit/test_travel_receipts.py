"""Receipts, pure: the type judged by the file's leading bytes, never by its name; the display name
cleaned; the size limit; whose receipt a claim's line may name."""

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from services.common.refusals import Invalid
from services.travel.domain import Expense, check_receipts
from services.travel.receipts import checked_type, checksum, display_name, new_receipt, sniff, too_large

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.mark.parametrize(("content", "expected"), [
    (PDF, "application/pdf"),
    (JPEG, "image/jpeg"),
    (b"\xff\xd8\xff\xdb" + b"\x00" * 10, "image/jpeg"),  # a JPEG without a JFIF header (raw, as cameras write)
    (PNG, "image/png"),
])
def test_the_accepted_types_are_recognised_by_their_magic_numbers(content: bytes, expected: str) -> None:
    assert sniff(content) == expected


@pytest.mark.parametrize("content", [
    b"<!doctype html><script>alert(1)</script>",
    b"<html>%PDF-1.7</html>",  # a PDF signature that does not open the file
    b" %PDF-1.7",  # leading junk
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    b"GIF89a\x01\x00\x01\x00",
    b"PK\x03\x04",  # a zip (an office file)
    b"MZ\x90\x00",  # a Windows executable
    b"\x7fELF",
    b"%PDF",  # the signature cut short
    b"\x89PNG\r\n",  # cut short
    b"\xff\xd8",  # cut short
    b"",
])
def test_anything_else_is_no_receipt(content: bytes) -> None:
    assert sniff(content) is None


def test_the_refusals_name_the_accepted_types_and_the_limit() -> None:
    with pytest.raises(Invalid) as refused:
        checked_type(b"<html></html>", 1000)
    assert (refused.value.code, refused.value.field) == ("receipt_type", "file")
    assert "PDF, JPEG and PNG" in str(refused.value)
    with pytest.raises(Invalid) as empty:
        checked_type(b"", 1000)
    assert empty.value.code == "receipt_empty"
    with pytest.raises(Invalid) as large:
        checked_type(PDF + b"x" * 5 * 1024 * 1024, 5 * 1024 * 1024)
    assert large.value.code == "receipt_too_large" and "5 MiB" in str(large.value)
    assert "1000 bytes" in str(too_large(1000))
    assert checked_type(PDF, len(PDF)) == "application/pdf"  # exactly the limit is accepted


@pytest.mark.parametrize(("given", "shown"), [
    ("receipt.pdf", "receipt.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\ana\\train ticket.pdf", "train ticket.pdf"),
    ("evil\r\nX-Header: 1.pdf", "evilX-Header: 1.pdf"),
    ("a\x00b\u202eFDP.exe", "abFDP.exe"),  # NUL and a right-to-left override dropped
    ("billet   de   train.png", "billet de train.png"),
    ("reçu.pdf", "reçu.pdf"),
    ("x" * 500 + ".pdf", "x" * 200),
    ("", None),
    (None, None),
    ("/", None),
])
def test_the_file_name_is_kept_for_display_only_and_cleaned(given: str | None, shown: str | None) -> None:
    assert display_name(given) == shown


def test_a_new_receipt_has_its_checksum_and_its_owner_in_lower_case() -> None:
    city = uuid4()
    receipt = new_receipt(PNG, "photo.png", owner_email="Ana@Ghent.be", city_id=city, uploaded_by="ana", max_bytes=1000,
                          now=datetime(2026, 3, 12, tzinfo=UTC))
    assert (receipt.content_type, receipt.size, receipt.extension) == ("image/png", len(PNG), "png")
    assert receipt.sha256 == checksum(PNG) == hashlib.sha256(PNG).hexdigest()
    assert receipt.owner_email == "ana@ghent.be" and receipt.belongs_to(city, "ANA@ghent.be")
    assert not receipt.belongs_to(uuid4(), "ana@ghent.be") and not receipt.belongs_to(city, "eva@ghent.be")


def test_a_line_may_name_only_the_claimants_own_receipt() -> None:
    city = uuid4()
    mine = new_receipt(PDF, None, owner_email="ana@ghent.be", city_id=city, uploaded_by="ana", max_bytes=1000,
                       now=datetime(2026, 3, 12, tzinfo=UTC))
    theirs = new_receipt(PDF, None, owner_email="eva@ghent.be", city_id=city, uploaded_by="eva", max_bytes=1000,
                         now=datetime(2026, 3, 12, tzinfo=UTC))
    line = lambda receipt_id: Expense("transport", Decimal("80.00"), "EUR", date(2026, 3, 9), receipt_id=receipt_id)  # noqa: E731
    receipts = {mine.id: mine, theirs.id: theirs}
    check_receipts([line(None), line(mine.id)], receipts, city, "Ana@Ghent.be")  # hers: accepted
    for foreign in (theirs.id, uuid4()):  # another's, or none at all: the same refusal
        with pytest.raises(Invalid) as refused:
            check_receipts([line(mine.id), line(foreign)], receipts, city, "ana@ghent.be")
        assert (refused.value.code, refused.value.field) == ("receipt_unknown", "lines[1].receipt_id")
        assert str(refused.value).startswith("line 2 (transport, 80.00 EUR")
    assert line(mine.id).proven and not line(None).proven
