"""The mails' words, from the gettext catalogues of domain `icc` (services/common/locale, the same
the documents use, read as they are: no compile step). A msgid missing from a language falls back
to English."""

from datetime import date, datetime
from decimal import Decimal

from services.common.documents import catalogue, day, money

LANGUAGES = ("en", "fr")


def _shown(value: object, language: str) -> object:
    """Amounts and dates as the language writes them (`1 234,56 €`, `15 mars 2027`)."""
    if isinstance(value, Decimal):
        return money(value, language)
    if isinstance(value, date) and not isinstance(value, datetime):
        return day(value, language)
    return value


def text(language: str, msgid: str, **values: object) -> str:
    template = catalogue(language).get(msgid) or catalogue("en")[msgid]
    return template.format(**{name: _shown(value, language) for name, value in values.items()})


def mail(language: str, which: str, **values: object) -> tuple[str, str]:
    """The subject and body of mail `which` (msgids mail.<which>.subject / .body) in `language`."""
    return text(language, f"mail.{which}.subject", **values), text(language, f"mail.{which}.body", **values)
