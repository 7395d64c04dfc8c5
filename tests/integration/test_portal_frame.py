"""The portal's frame: sign-in required, the menu by role, the language (chosen, remembered, or the
browser's), amounts and dates formatted for it, every route with a rule, every text translated."""

from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from services.common.auth import rules
from services.portal import i18n
from services.portal.app import build_app
from services.portal.settings import PortalSettings
from tests.identity import STAND_IN
from tests.portal import portal_over, text_of

PORTAL = Path(__file__).parents[2] / "services" / "portal"


async def test_signed_out_goes_to_the_sign_in_and_back() -> None:
    async with portal_over({}) as portal:
        answer = await portal.get("/")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/"


async def test_the_menu_follows_the_roles_and_the_language_is_chosen_and_remembered() -> None:
    async with portal_over({}) as portal:
        portal.sign_in("finance", username="fiona")
        page = await portal.get("/", headers={"accept-language": "fr-FR,fr;q=0.9,en;q=0.5"})
        assert page.status_code == 200
        assert 'lang="fr"' in page.text and "Bienvenue, fiona" in text_of(page.text)
        assert "Tableau de bord financier" in page.text  # finance sees the dashboard
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        chosen = await portal.post("/language", data={"lang": "en", "next": "/"})
        assert chosen.status_code == 303 and chosen.headers["location"] == "/"
        assert portal.cookies.get("icc_lang") == "en"
        page = await portal.get("/", headers={"accept-language": "fr"})  # the choice wins over the browser
        assert 'lang="en"' in page.text and "Welcome, fiona" in text_of(page.text)


async def test_a_mangled_address_is_a_page_not_json() -> None:
    async with portal_over({}) as portal:
        portal.sign_in("organiser", username="olga", lang="fr")
        answer = await portal.get("/organiser/events/not-a-uuid")
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
        assert "Cette adresse n'est pas connue du portail" in text_of(answer.text)


async def test_a_person_without_a_role_is_told_what_to_do() -> None:
    async with portal_over({}) as portal:
        portal.sign_in(username="nobody")
        page = await portal.get("/")
        assert "Ask the ICC secretariat" in page.text
        assert "Finance dashboard" not in page.text


async def test_an_unknown_language_or_an_outside_destination_changes_nothing() -> None:
    async with portal_over({}) as portal:
        answer = await portal.post("/language", data={"lang": "de", "next": "https://elsewhere.example/"})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert portal.cookies.get("icc_lang") is None


def test_amounts_and_dates_in_each_language() -> None:
    token = i18n.language.set("fr")
    try:
        assert i18n.money(Decimal("1234.56")) == "1\xa0234,56\xa0€"
        assert i18n.day("2026-03-15") == "15 mars 2026"
    finally:
        i18n.language.reset(token)
    assert i18n.money("1234.56") == "€1,234.56"
    assert i18n.day("2026-03-15") == "Mar 15, 2026"


def test_every_portal_route_declares_who_may_use_it() -> None:
    app = build_app(PortalSettings(), keys=STAND_IN.keys())
    missing = [f"{methods} {path}" for methods, path, rule in rules(app) if rule is None]
    assert not missing, f"routes without require()/page()/public: {missing}"


def test_every_text_of_the_pages_has_a_french_translation() -> None:
    french = i18n.catalogue("fr")
    method_map = [("templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
    used = {message if isinstance(message, str) else message[0]
            for _, _, message, _, *_ in extract_from_dir(str(PORTAL), method_map=method_map, options_map=options,
                                                          keywords={"_": None, "gettext": None, "ngettext": (1, 2), "menu_item": (2,)})}
    assert {"Skip to content", "Welcome, %(name)s"} <= used  # the extraction sees the templates
    missing = sorted(text for text in used if text and text not in french)
    assert not missing, f"texts without a French translation (add them to services/portal/locale/fr/LC_MESSAGES/*.po): {missing}"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_catalogues_keep_the_placeholders(lang: str) -> None:
    import re

    for english, translated in i18n.catalogue(lang).items():
        assert sorted(re.findall(r"%\(\w+\)s", english)) == sorted(re.findall(r"%\(\w+\)s", translated)), english


def test_one_english_text_has_one_french_text_across_the_catalogues() -> None:
    """The parts' catalogues merge into one: the same words translated two ways would make the
    last file win, silently (use different English words where French needs two, e.g. a gender)."""
    from babel.messages.pofile import read_po

    translations: dict[str, set[str]] = {}
    for po in i18n.catalogue_files("fr"):
        with po.open("rb") as file:
            for message in read_po(file):
                if message.id and message.string:
                    translations.setdefault(message.id, set()).add(message.string)
    clashes = {english: french for english, french in translations.items() if len(french) > 1}
    assert not clashes, f"translated differently in two catalogues: {clashes}"


def test_the_page_table_in_docs_is_the_code() -> None:
    """docs/portal.md lists every route of the portal with the roles its rule requires."""
    import re

    def described(rule) -> str:
        if type(rule).__name__ == "Public":
            return "public"
        return ", ".join(rule.roles) if rule.roles else "anyone signed in"

    app = build_app(PortalSettings(), keys=STAND_IN.keys())
    code = {f"{methods} {path}": described(rule) for methods, path, rule in rules(app)}
    table = dict(re.findall(r"^\| `([A-Z,]+ /[^`]*)` \| ([^|]+?) \|$", (PORTAL.parents[1] / "docs" / "portal.md").read_text(), re.M))
    assert table == code, (f"docs/portal.md differs from the code: only in the docs {sorted(set(table.items()) - set(code.items()))}; "
                           f"only in the code {sorted(set(code.items()) - set(table.items()))}")


async def test_a_note_is_shown_once_and_notes_never_shown_do_not_pile_up(monkeypatch) -> None:
    from services.portal import web

    monkeypatch.setattr(web, "MAX_PENDING_NOTES", 3)
    async with portal_over({}) as portal:
        portal.sign_in("finance", username="fiona")
        for n in range(5):  # five browsers that wrote something and never came back
            portal.app.state.notes[f"gone-{n}"] = ["left behind"]
        portal.cookies.set("icc_session", next(iter(portal.app.state.web_sessions._sessions)))
        request = type("R", (), {"app": portal.app, "cookies": dict(portal.cookies)})()
        web.note(request, "Payment recorded.")
        assert len(portal.app.state.notes) == 3 and "gone-0" not in portal.app.state.notes
        first, again = await portal.get("/"), await portal.get("/")
        assert "Payment recorded." in first.text and "Payment recorded." not in again.text
