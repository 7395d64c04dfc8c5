"""The person's language (English or French) and the texts, amounts and dates in it.

Texts are gettext catalogues read at start (no compile step): every `*.po` under
services/portal/locale/<language>/LC_MESSAGES plus the platform's shared one
(services/common/locale: the documents' and e-mails' words). The message id is the English text;
English needs no catalogue. A language is chosen by the person (a cookie, remembered a year) or
else the browser's Accept-Language."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.dates import format_date, format_datetime

from services.common.login import LANGUAGE_COOKIE as COOKIE

LANGUAGES = ("en", "fr")
DEFAULT = "en"
NAMES = {"en": "English", "fr": "Français"}

PORTAL_LOCALE = Path(__file__).parent / "locale"
SHARED_LOCALE = Path(__file__).parents[1] / "common" / "locale"

language: ContextVar[str] = ContextVar("language", default=DEFAULT)


def catalogue_files(lang: str) -> list[Path]:
    return sorted((PORTAL_LOCALE / lang / "LC_MESSAGES").glob("*.po")) + sorted((SHARED_LOCALE / lang / "LC_MESSAGES").glob("*.po"))


@cache
def catalogue(lang: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for po in catalogue_files(lang):
        with po.open("rb") as file:
            texts.update({m.id: m.string for m in read_po(file) if m.id and isinstance(m.id, str) and m.string})
    return texts


def gettext(text: str) -> str:
    lang = language.get()
    return text if lang == DEFAULT else catalogue(lang).get(text, text)


def ngettext(singular: str, plural: str, n: int) -> str:
    return gettext(singular if n == 1 else plural)


_ = gettext


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The person's choice if they made one, else the browser's best match, else English."""
    if cookie in LANGUAGES:
        return cookie
    wanted = [part.split(";")[0].strip().replace("-", "_") for part in (accept_language or "").split(",") if part.strip()]
    return negotiate_locale(wanted, LANGUAGES, sep="_") or DEFAULT


def _tidy(text: str) -> str:
    return text.replace("\u202f", "\xa0")  # one kind of non-breaking space, whatever CLDR says


def money(amount: Decimal | str | int | None, currency: str = "EUR") -> str:
    """`1 234,56 €` in French, `€1,234.56` in English; never through a float."""
    if amount is None or amount == "":
        return ""
    return _tidy(format_currency(Decimal(str(amount)), currency, locale=language.get()))


def number(value: Decimal | str | int | None) -> str:
    if value is None or value == "":
        return ""
    return _tidy(format_decimal(Decimal(str(value)), locale=language.get()))


def day(value: date | str | None) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return _tidy(format_date(value, format="medium", locale=language.get()))


def moment(value: datetime | str | None) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return _tidy(format_datetime(value, format="medium", locale=language.get()))


def country(code: str | None) -> str:
    """A country's name in the person's language (the services speak ISO 3166 codes)."""
    if not code:
        return ""
    return Locale.parse(language.get()).territories.get(code.upper(), code)
