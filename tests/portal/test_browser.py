"""The portal in a real headless Chromium (Debian's `chromium`, driven by Playwright for Python; no
browser is ever downloaded): sign in, the balance the API reports, claim a reward and see the
coupon, switch to Polish, copy the referral link, sign out; a screenshot of the home page at
375 px wide is saved under tests/artifacts/.

Skipped (with the reason) where /usr/bin/chromium is missing, except under
LOYALTY_REQUIRE_SERVICES=1 (CI), where a missing browser is a failure."""

import os
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.db import connections
from django.utils import timezone

from loyalty.demo import demo_program_seed
from loyalty.models import Member, RewardClaim, Scope
from loyalty.services.access import api_key_create
from loyalty.services.settlement import points_mature
from tests.factories import MemberFactory, place_order
from tests.portal.conftest import PASSWORD, set_password

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

pytestmark = pytest.mark.browser


def _require_chromium():
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("LOYALTY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"LOYALTY_REQUIRE_SERVICES=1 but {CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")


@pytest.fixture
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    # plain synchronous code, which Django would otherwise refuse next to a running loop.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            yield launched
            launched.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def shop(transactional_db, live_server):
    """The demo program, Anna with 700 available and 100 pending points, and a checkout API key."""
    program = demo_program_seed(year=timezone.now().year)
    now = timezone.now()
    anna = MemberFactory(program=program, external_id="anna", email="anna@example.com", now=now - timedelta(days=60))
    place_order(program, anna, "700.00", now=now - timedelta(days=40), external_id="1041")
    points_mature(now)
    place_order(program, anna, "100.00", now=now, external_id="1042")
    key = api_key_create(program=program, name="checkout", scopes=[Scope.MEMBERS])[1]
    return {"program": program, "anna": set_password(anna), "key": key, "url": live_server.url}


def test_a_member_signs_in_claims_switches_to_polish_copies_the_link_and_signs_out(shop, browser):
    try:
        _journey(shop, browser)
    finally:
        # Playwright's sync API runs this in a greenlet with its own context, where Django opened a
        # second database connection: close it here, or the test database cannot be dropped.
        connections.close_all()


def _journey(shop, browser):
    url, program = shop["url"], shop["program"]
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="en-US")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page = context.new_page()
    page.set_default_timeout(15_000)

    # Sign in
    page.goto(f"{url}/portal/")
    assert page.url.startswith(f"{url}/portal/login/")
    page.get_by_label("E-mail").fill("anna@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/portal/")

    # The balance is the one the API reports
    api = httpx.get(f"{url}/api/v1/members/anna/", headers={"Authorization": f"Bearer {shop['key']}"}, timeout=10)
    available = api.json()["balances"]["PTS"]["available"]
    assert available > 0
    assert page.locator("#available-points").inner_text() == f"{available:,}"
    assert page.locator("#available-points").get_attribute("data-points") == str(available)

    # Usable at 375 px: nothing wider than the screen; a screenshot as the test's artifact
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "portal-home-375.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot of the home page at 375 px: {shot}")

    # Keyboard: the first Tab lands on "Skip to content", which moves to the main content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"

    # Claim a reward with confirmation; the coupon is shown
    sample = program.rewards.get(name="Deluxe sample")
    page.goto(f"{url}/portal/rewards/")
    page.locator(f"#claim-{sample.pk}").click()
    page.get_by_role("button", name="Yes, claim it").click()
    coupon = page.locator("#coupon-code").inner_text()
    claim = RewardClaim.objects.get(member__external_id="anna")
    assert coupon == claim.coupon_code and coupon.startswith("SAMPLE-")

    # Switch to Polish: Polish words, Polish money
    page.goto(f"{url}/portal/")
    page.get_by_label("Language").select_option("pl")
    page.get_by_role("button", name="Change").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "pl"
    body = page.locator("main").inner_text()
    assert "Twoje punkty" in body and "Twój poziom" in body
    value = (available - 100) * program.primary_asset.unit_value
    assert f"Warte {value:.2f}".replace(".", ",") + "\xa0USD przy kasie" in body
    assert re.search(r"\d+,\d\d\xa0USD", body)
    assert Member.objects.get(external_id="anna").locale == "pl"  # kept in the profile

    # Copy the referral link
    page.goto(f"{url}/portal/referrals/")
    link = page.locator("#referral-link").input_value()
    assert link.startswith(f"{url}/portal/join/")
    page.get_by_role("button", name="Kopiuj").click()
    page.wait_for_function("document.getElementById('copy-status').textContent.length > 0")
    assert page.locator("#copy-status").inner_text() == "Skopiowano link."
    assert page.evaluate("navigator.clipboard.readText()") == link

    # The link is the join page for a friend
    friend = browser.new_context(locale="en-US").new_page()
    friend.goto(link)
    assert "Anna invited you." in friend.locator("main").inner_text()
    friend.context.close()

    # Sign out
    page.get_by_role("button", name="Wyloguj").click()
    page.wait_for_url(f"{url}/portal/login/")
    page.goto(f"{url}/portal/")
    assert page.url.startswith(f"{url}/portal/login/")
    context.close()
