"""The services' refusals and request-validation errors reach the person in their language: every
refusal code raised in services/ and every validation error the services' requests can produce has a
French text (services/portal/locale/fr/LC_MESSAGES/refusals.po), and web.refused_from puts each
message next to the field it is about."""

import ast
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError

from services.events.app import build_app as build_events
from services.events.settings import EventsSettings
from services.finance.app import build_app as build_finance
from services.finance.settings import FinanceSettings
from services.membership.app import build_app as build_membership
from services.membership.settings import MembershipSettings
from services.notifications.app import build_app as build_notifications
from services.notifications.settings import NotificationsSettings
from services.portal import i18n, web
from services.travel.app import build_app as build_travel
from services.travel.schemas import ClaimRequest
from services.travel.settings import TravelSettings

ROOT = Path(__file__).parents[2]
SERVICES = ROOT / "services"
CATALOGUE = "services/portal/locale/fr/LC_MESSAGES/refusals.po"


# --- refusal codes ------------------------------------------------------------------------------


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def raised_codes() -> dict[str, list[str]]:
    """Every refusal code in the services' source, with where it is: `code="..."` passed to a call
    (a refusal, or a refusal's super().__init__), `{"code": "...", "field"/"detail": ...}` spread
    into one, and the refusal kinds' own `code = "..."` (raised when no precise code is given)."""
    found: dict[str, list[str]] = {}
    for path in sorted(SERVICES.rglob("*.py")):
        if SERVICES / "portal" in path.parents:
            continue
        where = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            codes: list[str | None] = []
            if isinstance(node, ast.Call):
                codes = [_text(k.value) for k in node.keywords if k.arg == "code"]
            elif isinstance(node, ast.Dict):
                keys = [_text(k) for k in node.keys]
                if "code" in keys and {"field", "detail"} & set(keys):
                    codes = [_text(node.values[keys.index("code")])]
            elif isinstance(node, ast.ClassDef):
                codes = [_text(s.value) for s in node.body
                         if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "code" for t in s.targets)]
            for code in filter(None, codes):
                found.setdefault(code, []).append(f"{where}:{node.lineno}")
    return found


CODES = raised_codes()


def test_the_scan_finds_the_refusals_however_they_are_raised() -> None:
    assert "no_city" in CODES  # raise NotFound(..., code="no_city")
    assert "answers_do_not_fit" in CODES  # super().__init__(..., code=...) of a refusal subclass
    assert "rate_missing" in CODES  # **{"code": ..., "field": ...}
    assert {"refused", "not_found", "conflict", "not_yet_known", "invalid", "not_yours"} <= set(CODES)  # the kinds' own
    assert len(CODES) > 50


def test_every_refusal_code_raised_by_the_services_has_a_french_text() -> None:
    french = i18n.catalogue("fr")
    missing = {code: places for code, places in CODES.items() if f"refusal.{code}" not in french}
    assert not missing, (
        f"refusal codes without a French text: add `msgid \"refusal.<code>\"` entries to {CATALOGUE} "
        "(a sentence without the values, which the portal does not receive): "
        + "; ".join(f"{code} (raised at {', '.join(places)})" for code, places in sorted(missing.items()))
    )


def test_every_french_refusal_text_is_for_a_code_still_raised() -> None:
    stale = sorted(key for key in i18n.catalogue("fr") if key.startswith("refusal.") and key[len("refusal."):] not in CODES)
    assert not stale, f"{CATALOGUE} has texts for codes no service raises any more: {stale}"


# --- request validation --------------------------------------------------------------------------

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "DATABASE_URL": "sqlite+aiosqlite:///:memory:"}

# What people get wrong in a form: nothing, blanks, words for numbers, floats and exponents for money,
# impossible, future, far past and timed dates, wrong choices, far too much, lists of nothing.
WRONG: list[object] = [
    None, "", "   ", "abc", "x" * 5000, "-1", -1, 0, 1.5, 10**13, "1E+30", "1.234", "0.123456", "12,50", "NaN",
    "2027-13-45", "2027-01-01T10:30:00", "2999-01-01", "1999-01-01", "1000000000000000000000", True,
    [], ["x"] * 200, {}, "not-a-uuid", "xx", "ZZZ", "no-at-sign",
]


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models(argument)


def _wrong_bodies(model: type[BaseModel], depth: int = 0) -> Iterator[dict[str, object]]:
    """Each field of the model wrong in each way (the others missing), nested models included."""
    for name, info in model.model_fields.items():
        key = info.alias or name
        for value in WRONG:
            yield {key: value}
        if depth < 3:
            for inner in _models(info.annotation):
                for body in _wrong_bodies(inner, depth + 1):
                    yield {key: body}
                    yield {key: [body]}


def _parameters(dependant) -> Iterator:
    yield from dependant.body_params
    yield from dependant.query_params
    yield from dependant.path_params
    for dependency in dependant.dependencies:
        yield from _parameters(dependency)


def validation_types() -> set[str]:
    """The pydantic error types the services' requests (bodies, queries, paths) answer with, found by
    sending each parameter the wrong values a person might."""
    apps = [build_membership(MembershipSettings(**NO_BROKER)), build_events(EventsSettings(**NO_BROKER)),
            build_travel(TravelSettings(**NO_BROKER)), build_finance(FinanceSettings(**NO_BROKER)),
            build_notifications(NotificationsSettings(**NO_BROKER))]
    found: set[str] = set()
    for app in apps:
        for route in iter_route_contexts(app.routes):
            if not isinstance(route.original_route, APIRoute):
                continue
            for parameter in _parameters(route.dependant):
                wrong = [body for model in _models(parameter.field_info.annotation) for body in _wrong_bodies(model)]
                for value in wrong + WRONG:
                    _, errors = parameter.validate(value, {}, loc=("body",))
                    found |= {error["type"] for error in errors or []}
    return found


def test_every_validation_error_the_services_can_answer_has_a_french_text() -> None:
    found = validation_types()
    assert {"missing", "greater_than", "less_than_equal", "value_error", "uuid_parsing", "date_from_datetime_parsing",
            "decimal_parsing", "int_parsing", "literal_error", "string_too_long", "too_long"} <= found  # the probe reaches them
    french = i18n.catalogue("fr")
    missing = sorted(kind for kind in found if f"validation.{kind}" not in french)
    assert not missing, f"validation error types without a French text: add `msgid \"validation.<type>\"` entries to {CATALOGUE}: {missing}"


# --- refused_from: the message, in the person's language, next to its field ----------------------


@pytest.fixture(params=["en", "fr"])
def lang(request: pytest.FixtureRequest) -> Iterator[str]:
    token = i18n.language.set(request.param)
    yield request.param
    i18n.language.reset(token)


def _answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "http://travel/claims"))


def _unprocessable(model: type[BaseModel], body: dict[str, object]) -> httpx.Response:
    """The 422 FastAPI answers: the model's own errors, located in the body."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    errors = [{**error, "loc": ["body", *error["loc"]]} for error in caught.value.errors(include_url=False, include_context=False)]
    return _answer(422, {"detail": errors})


def test_a_refusal_is_said_in_the_persons_language_next_to_its_field(lang: str) -> None:
    english = "the city's credit is 10.00 EUR, not 25.00"
    refused = web.refused_from(_answer(409, {"detail": english, "code": "more_than_credit", "field": "amount", "retryable": False}))
    expected = {"en": english, "fr": "Ce montant dépasse le crédit dont dispose la ville."}[lang]
    assert (refused.status, refused.code, refused.message) == (409, "more_than_credit", expected)
    assert refused.errors == {"amount": expected}


def test_a_refusal_without_a_field_or_with_a_new_code(lang: str) -> None:
    paid = web.refused_from(_answer(409, {"detail": "claim 7 was paid: nothing about it can change any more", "code": "claim_decided"}))
    assert paid.errors == {}
    assert paid.message.startswith({"en": "claim 7 was paid", "fr": "Le service financier a déjà statué sur cette demande"}[lang])
    # A code the catalogue does not know yet: the service's own sentence rather than nothing.
    new = web.refused_from(_answer(409, {"detail": "something new happened", "code": "brand_new"}))
    assert new.message == "something new happened"
    # A 404 from a route without a refusal (no code): nothing is revealed either way.
    unknown = web.refused_from(_answer(404, {"detail": "Not Found"}))
    assert unknown.message == {"en": "Not found, or not yours to see.", "fr": "Introuvable, ou vous n'y avez pas accès."}[lang]


def test_validation_errors_land_next_to_their_fields_in_the_persons_language(lang: str) -> None:
    answer = _unprocessable(ClaimRequest, {
        "registration_id": "not-a-uuid",
        "nights": 61,
        "lines": [{"kind": "transport", "amount": "12.345", "currency": "NOK", "spent_on": "2026-03-02"},
                  {"kind": "transport", "currency": "EUR", "spent_on": "2026-03-02"}],
    })
    refused = web.refused_from(answer)
    assert (refused.status, refused.code) == (422, "invalid")
    assert refused.message == {"en": "Some fields need correcting.", "fr": "Certains champs sont à corriger."}[lang]
    assert set(refused.errors) == {"registration_id", "nights", "lines[0].amount", "lines[1].amount"}
    if lang == "en":  # pydantic's own sentences, and the field types' (services/common/fields.py, contracts/money.py)
        assert refused.errors["nights"] == "Input should be less than or equal to 60"
        assert "two decimal places" in refused.errors["lines[0].amount"]
        assert refused.errors["lines[1].amount"] == "Field required"
    else:
        assert refused.errors["registration_id"] == "Cet identifiant n'est pas valide."
        assert refused.errors["nights"] == "Cette valeur dépasse le maximum admis."
        assert refused.errors["lines[0].amount"].startswith("Cette valeur n'est pas valide")
        assert refused.errors["lines[1].amount"] == "Ce champ est obligatoire."


def test_a_validation_error_of_an_unknown_type_or_of_the_whole_body(lang: str) -> None:
    refused = web.refused_from(_answer(422, {"detail": [
        {"type": "some_future_type", "loc": ["body", "lines", 2, "receipt"], "msg": "Something is off"},
        {"type": "json_invalid", "loc": ["body", 12], "msg": "JSON decode error"},
        {"type": "int_parsing", "loc": ["query", "limit"], "msg": "Input should be a valid integer"},
    ]}))
    assert refused.errors == {
        "en": {"lines[2].receipt": "Something is off", "[12]": "JSON decode error", "limit": "Input should be a valid integer"},
        "fr": {"lines[2].receipt": "Valeur non valide.", "[12]": "La demande n'est pas lisible : son contenu est mal formé.",
               "limit": "Saisissez un nombre entier."},
    }[lang]


def test_the_french_texts_name_no_values() -> None:
    """The portal receives the code, not the values: a `%(...)s` or `{...}` would show as such."""
    texts = {k: v for k, v in i18n.catalogue("fr").items() if k.startswith(("refusal.", "validation."))}
    assert texts and not [k for k, v in texts.items() if "%(" in v or "{" in v]


def test_refusals_po_is_a_portal_catalogue() -> None:
    assert ROOT / CATALOGUE in i18n.catalogue_files("fr")
