"""A multipart/form-data upload read as it arrives, in bounded chunks: a body larger than the limit
is refused as soon as it passes it, never held whole (in memory or a temporary file, as a form
parsed up front would). A few short text fields may come with the file."""

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.common.refusals import Invalid, Refusal

FIELD_MAX = 1024  # a text field (an e-mail address, an id) is short
PARTS_MAX = 8
OVERHEAD = 64 * 1024  # the multipart framing and the text fields, beyond the file itself


@dataclass
class Upload:
    filename: str | None
    content: bytes
    fields: dict[str, str] = field(default_factory=dict)


def _malformed(why: str) -> Invalid:
    return Invalid(f"the upload is not a readable multipart/form-data body: {why}", code="upload_malformed", field="file")


class _Reader:
    """The parser's callbacks: one part at a time, every size checked as the bytes arrive."""

    def __init__(self, file_field: str, max_bytes: int, too_large: Callable[[], Refusal]) -> None:
        self.file_field, self.max_bytes, self.too_large = file_field, max_bytes, too_large
        self.parts, self.ended = 0, False
        self.file: Upload | None = None
        self.fields: dict[str, str] = {}
        self._header_name, self._header_value = bytearray(), bytearray()
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._filename: str | None = None
        self._data = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin, "on_header_field": self.header_field, "on_header_value": self.header_value,
            "on_header_end": self.header_end, "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
            "on_part_end": self.part_end, "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > PARTS_MAX:
            raise _malformed(f"more than {PARTS_MAX} parts")
        self._headers, self._name, self._filename, self._data = {}, None, None, bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[bytes(self._header_name).decode("latin-1").strip().lower()] = bytes(self._header_value)
        self._header_name, self._header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get("content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise _malformed("a part without a Content-Disposition: form-data name")
        self._name = options[b"name"].decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = None if filename is None else filename.decode("utf-8", "replace")
        if self._name == self.file_field and self.file is not None:
            raise Invalid(f"one file per upload: the form has more than one `{self.file_field}`", code="upload_malformed",
                          field=self.file_field)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        limit = self.max_bytes if self._name == self.file_field else FIELD_MAX
        if len(self._data) + (end - start) > limit:
            if self._name == self.file_field:
                raise self.too_large()
            raise Invalid(f"the form field `{self._name}` is longer than {FIELD_MAX} bytes", code="upload_malformed",
                          field=self._name)
        self._data += data[start:end]

    def part_end(self) -> None:
        if self._name == self.file_field:
            self.file = Upload(self._filename, bytes(self._data))
        elif self._name is not None:
            try:
                self.fields[self._name] = self._data.decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid(f"the form field `{self._name}` is not UTF-8 text", code="upload_malformed", field=self._name) from None

    def end(self) -> None:
        self.ended = True


async def read_upload(request: Request, *, file_field: str, max_bytes: int, too_large: Callable[[], Refusal]) -> Upload:
    """The one file of the form's `file_field` (and its text fields), refused with `too_large()` as
    soon as the file passes `max_bytes` (or the body that much plus the framing)."""
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise Invalid(f"send the file as multipart/form-data, in the field `{file_field}`", code="multipart_expected",
                      field=file_field)
    body_max = max_bytes + OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_max:
        raise too_large()  # said up front: not a byte of it is read
    reader = _Reader(file_field, max_bytes, too_large)
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_max:
                raise too_large()
            parser.write(chunk)
        parser.finalize()
    except (FormParserError, ValueError) as err:  # FormParserError is one; the parser may raise a bare one too
        raise _malformed(str(err)) from None
    if not reader.ended:
        raise _malformed("the body ends before its closing boundary")
    if reader.file is None:
        raise Invalid(f"no file: send it in the form field `{file_field}`", code="receipt_missing", field=file_field)
    reader.file.fields = reader.fields
    return reader.file
