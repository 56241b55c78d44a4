"""English and Polish: the committed .mo is compiled from the current .po, every Polish entry is
translated, and pages, money, numbers and dates follow the member's language."""

import gettext
from pathlib import Path

from babel.messages.pofile import read_po

import loyalty
from tests.portal.conftest import signed_in

LOCALE = Path(loyalty.__file__).parent / "locale"


def test_polish_catalog_is_complete_and_the_mo_is_compiled_from_it():
    # Given the .po as committed (read in pure Python: no gettext tools needed)
    with open(LOCALE / "pl/LC_MESSAGES/django.po", "rb") as f:
        catalog = read_po(f)
    with open(LOCALE / "pl/LC_MESSAGES/django.mo", "rb") as f:
        compiled = gettext.GNUTranslations(f)

    # Then every entry is translated and not fuzzy, and the .mo says exactly the same
    messages = [m for m in catalog if m.id]
    assert len(messages) > 150
    untranslated = [m.id for m in messages if not m.string or m.fuzzy]
    assert untranslated == [], f"translate these in django.po: {untranslated}"
    stale = [m.id for m in messages if compiled.gettext(m.id) != m.string]
    assert stale == [], f"django.mo is older than django.po (run compilemessages): {stale[:5]}"
    extra = set(compiled._catalog) - {m.id for m in messages} - {""}
    assert extra == set(), f"django.mo has entries the .po no longer has: {sorted(extra)[:5]}"


def test_language_comes_from_the_browser_before_sign_in(db):
    from django.test import Client

    page = Client().get("/portal/login/", HTTP_ACCEPT_LANGUAGE="pl-PL,pl;q=0.9")
    assert 'lang="pl"' in page.content.decode() and "Zaloguj się" in page.content.decode()
    signed_out_page = Client().get("/portal/login/", HTTP_ACCEPT_LANGUAGE="en-US")
    assert "Sign in" in signed_out_page.content.decode()


def test_the_members_language_beats_the_browser_and_formats_money_and_dates(anna):
    # Given Anna chose Polish in her profile but browses with an English browser
    anna.locale = "pl"
    anna.save(update_fields=["locale"])
    client = signed_in(anna)

    # Then pages are Polish, with Polish number, money and date formats
    html = client.get("/portal/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Twoje punkty" in html and "Your points" not in html
    assert "200,00\xa0USD" in html  # money: decimal comma, code after the amount
    assert "31 grudnia 2026" in html  # dates: Polish month names
    # and English when she switches back
    client.post("/portal/language/", {"language": "en", "next": "/portal/"})
    html = client.get("/portal/").content.decode()
    assert "Your points" in html and "$200.00" in html and "Dec. 31, 2026" in html
