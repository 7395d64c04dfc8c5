"""The mails' words, from the gettext catalogues of domain `icc` (services/common/locale, Babel's
.po files read as they are: no compile step). A msgid missing from a language falls back to English."""

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE = Path(__file__).resolve().parents[1] / "common" / "locale"
DOMAIN = "icc"
LANGUAGES = ("en", "fr")


@cache
def catalogue(language: str) -> dict[str, str]:
    with (LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as file:
        return {message.id: message.string for message in read_po(file) if message.id and message.string}


def text(language: str, msgid: str, **values: object) -> str:
    template = catalogue(language).get(msgid) or catalogue("en")[msgid]
    return template.format(**values)


def mail(language: str, which: str, **values: object) -> tuple[str, str]:
    """The subject and body of mail `which` (msgids mail.<which>.subject / .body) in `language`."""
    return text(language, f"mail.{which}.subject", **values), text(language, f"mail.{which}.body", **values)
