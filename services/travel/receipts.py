"""Receipts: proof of payment uploaded as files. Pure: what a file is (by its leading bytes, never
by the name or type the client claims), its name for display, whose it is. No I/O.

A receipt belongs to a delegate (their e-mail address, in their city): the delegate uploads it, or
their city's coordinator for them. A claim's line may name it (`receipt_id`) as its proof of payment.
"""

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from services.common.refusals import Invalid

# The only types a receipt may be, and the extension its download gets. Anything else (HTML, SVG,
# scripts, archives, office files) is refused at upload, so it can never be served back.
ACCEPTED = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
ACCEPTED_NAMES = "a PDF, JPEG or PNG file"
FILENAME_MAX = 200
DEFAULT_MAX_BYTES = 5 * 1024 * 1024  # 5 MiB: a scanned page or a phone photo


def sniff(content: bytes) -> str | None:
    """The file's type by its magic number, or None when it is none of the accepted ones. The
    signature must open the file: a PDF with leading junk (or HTML with a PDF inside) is refused."""
    if content.startswith(b"%PDF-"):
        return "application/pdf"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def display_name(filename: str | None) -> str | None:
    """The client's file name, for display only (it never names the download): no directories, no
    control or invisible characters, at most FILENAME_MAX characters; None if nothing is left."""
    if not filename:
        return None
    base = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in base if not unicodedata.category(c).startswith(("C", "Z")) or c == " ")
    kept = " ".join(kept.split())[:FILENAME_MAX].strip()
    return kept or None


def too_large(max_bytes: int) -> Invalid:
    return Invalid(f"the receipt is larger than the limit of {_size(max_bytes)}: upload {ACCEPTED_NAMES} "
                   f"of at most {max_bytes} bytes", code="receipt_too_large", field="file")


def checked_type(content: bytes, max_bytes: int) -> str:
    """The accepted file's content type, or the refusal saying what is accepted."""
    if not content:
        raise Invalid(f"the receipt is empty: upload {ACCEPTED_NAMES}", code="receipt_empty", field="file")
    if len(content) > max_bytes:
        raise too_large(max_bytes)
    if (content_type := sniff(content)) is None:
        raise Invalid(f"the receipt is not {ACCEPTED_NAMES} (judged by its content, not its name or declared type): "
                      "only PDF, JPEG and PNG are accepted", code="receipt_type", field="file")
    return content_type


@dataclass(eq=False)
class Receipt:
    id: UUID
    sha256: str  # of the bytes, hex: the checksum the uploader can verify, and the idempotency key
    content_type: str  # one of ACCEPTED, sniffed
    size: int
    filename: str | None  # display only
    owner_email: str  # the delegate's, lower-cased
    city_id: UUID
    uploaded_by: str  # who uploaded it (the delegate, or their coordinator)
    created_at: datetime
    content: bytes

    @property
    def extension(self) -> str:
        return ACCEPTED[self.content_type]

    def belongs_to(self, city_id: UUID, email: str) -> bool:
        """A delegate's own receipt: their address, in their city."""
        return str(city_id) == str(self.city_id) and email.casefold() == self.owner_email.casefold()


def checksum(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def new_receipt(content: bytes, filename: str | None, *, owner_email: str, city_id: UUID, uploaded_by: str,
                max_bytes: int, now: datetime) -> Receipt:
    """An uploaded file accepted as a receipt (or refused, saying why)."""
    content_type = checked_type(content, max_bytes)
    return Receipt(id=uuid4(), sha256=checksum(content), content_type=content_type, size=len(content),
                   filename=display_name(filename), owner_email=owner_email.lower(), city_id=city_id,
                   uploaded_by=uploaded_by[:200], created_at=now, content=content)


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"
