"""The member portal, page by page: who may see what, forms that refuse bad input and change
nothing, and a bounded number of queries per page."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client

from loyalty.models import Member, MemberStatus, PortalSession, RewardClaim
from loyalty.models.gamification import Challenge, ChallengeProgress, CriterionKind
from loyalty.selectors.members import member_balances
from loyalty.services.members import member_enroll
from loyalty.services.rewards import reward_claim
from referrals.models import Referral, ReferralCode
from tests.conftest import JUNE
from tests.factories import place_order
from tests.portal.conftest import PASSWORD, signed_in
from tiers.models import BirthdayGift

MEMBER_PAGES = [
    "/portal/",
    "/portal/history/",
    "/portal/history/?kind=earned",
    "/portal/history/?kind=redeemed",
    "/portal/rewards/",
    "/portal/referrals/",
    "/portal/badges/",
    "/portal/profile/",
    "/portal/profile/close/",
]


def available(member) -> int:
    return member_balances(member=member, now=JUNE)["PTS"]["available"]


def reward(program, name):
    return program.rewards.get(name=name)


# --- sign-in, invitation, reset, sign-out ----------------------------------------------------------
def test_enrollment_sends_an_invitation_whose_link_sets_the_password_and_signs_in(
    program, django_capture_on_commit_callbacks
):
    # When a member is enrolled (by checkout, through the service)
    with django_capture_on_commit_callbacks(execute=True):
        member = member_enroll(program=program, external_id="eve", email="eve@example.com", first_name="Eve")

    # Then, after commit, one e-mail with a one-time link was sent
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["eve@example.com"] and "set your password" in message.subject.lower()
    link = re.search(r"http://\S+/portal/password/\S+/", message.body).group(0)

    # When Eve opens it and chooses a password, she is signed in
    client = Client()
    form_page = client.get(link.split("8000")[-1], follow=True)
    assert form_page.status_code == 200 and b"new_password1" in form_page.content
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": PASSWORD, "new_password2": PASSWORD}, follow=True
    )
    assert done.redirect_chain[-1][0] == "/portal/" and b"Hello, Eve" in done.content
    # and the link works once only
    again = client.get(link.split("8000")[-1], follow=True)
    assert b"expired or was used already" in again.content
    # and she can sign in with her e-mail in any case
    assert Member.objects.get(pk=member.pk).user.check_password(PASSWORD)
    assert Client().post("/portal/login/", {"email": "EVE@example.com", "password": PASSWORD}).status_code == 302


def test_a_member_enrolled_twice_in_a_row_is_not_invited_again_after_setting_a_password(anna):
    from loyalty.portal.services import portal_invitation_send

    assert portal_invitation_send(member_id=anna.pk) is False  # has a password already
    assert mail.outbox == []


def test_sign_in_with_a_wrong_password_shows_a_message_and_signs_nobody_in(anna):
    client = Client()
    response = client.post("/portal/login/", {"email": anna.email, "password": "wrong"})
    assert response.status_code == 200
    assert b"The e-mail or the password is not right." in response.content
    assert client.get("/portal/").status_code == 302


def test_sign_in_with_bad_input_shows_messages(db):
    response = Client().post("/portal/login/", {"email": "not an email", "password": ""})
    assert response.status_code == 200
    assert b"Enter a valid email address" in response.content and b"This field is required" in response.content


def test_sign_in_attempts_are_rate_limited_per_email_and_per_address(anna, settings):
    settings.PORTAL_LOGIN_FAILURES = 3
    client = Client()
    for _ in range(3):
        assert client.post("/portal/login/", {"email": anna.email, "password": "wrong"}).status_code == 200
    # Then even the right password is refused for a while, with a message and Retry-After
    response = client.post("/portal/login/", {"email": anna.email, "password": PASSWORD})
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert b"Too many attempts to sign in" in response.content
    assert client.get("/portal/").status_code == 302
    # per address too: many e-mails from one address
    settings.PORTAL_LOGIN_FAILURES_PER_ADDRESS = 5
    other = Client(REMOTE_ADDR="198.51.100.9")
    for n in range(5):
        other.post("/portal/login/", {"email": f"x{n}@example.com", "password": "wrong"})
    assert other.post("/portal/login/", {"email": "y@example.com", "password": "x"}).status_code == 429


def test_password_reset_sends_a_link_only_to_members_and_says_the_same_either_way(anna, bob, settings):
    client = Client()
    known = client.post("/portal/password/", {"email": anna.email.upper()})
    unknown = client.post("/portal/password/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert b"Check your e-mail" in known.content and b"Check your e-mail" in unknown.content
    assert [m.to for m in mail.outbox] == [[anna.email]]
    # bad input: a message, no e-mail
    bad = client.post("/portal/password/", {"email": "nope"})
    assert b"Enter a valid email address" in bad.content and len(mail.outbox) == 1
    # rate limited per address
    settings.PORTAL_PASSWORD_EMAILS_PER_ADDRESS = 2
    assert client.post("/portal/password/", {"email": bob.email}).status_code == 429
    assert len(mail.outbox) == 1


def test_sign_out_needs_post_and_ends_the_session(client_anna):
    assert client_anna.get("/portal/logout/").status_code == 405
    response = client_anna.post("/portal/logout/")
    assert response.status_code == 302 and response["Location"] == "/portal/login/"
    assert client_anna.get("/portal/").status_code == 302


def test_csrf_is_enforced_on_portal_forms(anna):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/portal/login/", {"email": anna.email, "password": PASSWORD}).status_code == 403
    page = client.get("/portal/login/")
    token = page.cookies["csrftoken"].value
    response = client.post("/portal/login/", {"email": anna.email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_next_only_goes_to_this_site(anna):
    client = Client()
    response = client.post(
        "/portal/login/", {"email": anna.email, "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/portal/"
    response = signed_in(anna).get("/portal/rewards/")
    assert response.status_code == 200


# --- who sees member pages -----------------------------------------------------------------------
@pytest.mark.parametrize("page", MEMBER_PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(db, page):
    response = Client().get(page)
    assert response.status_code == 302 and response["Location"].startswith("/portal/login/?next=")


@pytest.mark.parametrize("page", MEMBER_PAGES)
def test_staff_accounts_get_no_member_pages(staff, page):
    client = Client()
    client.force_login(staff)
    response = client.get(page)
    assert response.status_code == 403 and b"Staff accounts have no member pages" in response.content


def test_staff_cannot_sign_in_to_the_portal_even_when_linked_to_a_member(anna):
    user = anna.user
    user.is_staff = True
    user.save()
    response = Client().post("/portal/login/", {"email": anna.email, "password": PASSWORD})
    assert response.status_code == 200 and b"not right" in response.content


@pytest.mark.parametrize("page", MEMBER_PAGES)
def test_every_member_page_renders(client_anna, page):
    response = client_anna.get(page)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")  # never cached: personal data


def test_a_member_cannot_open_another_members_claim_referral_or_export(program, anna, bob, client_anna):
    # Given Bob has a claim, a referral and data
    claim = reward_claim(program=program, reward_id=reward(program, "Deluxe sample").pk, member_external_id="bob")
    friend = member_enroll(
        program=program,
        external_id="bobs-friend",
        email="bf@example.com",
        referral_code=ReferralCode.objects.get(member=bob, retired_at__isnull=True).code,
    )
    referral = Referral.objects.get(referee=friend)

    # Then Anna gets 404 for each, by id
    assert client_anna.get(f"/portal/rewards/claims/{claim.pk}/").status_code == 404
    assert client_anna.get(f"/portal/referrals/{referral.pk}/").status_code == 404
    assert client_anna.get("/portal/profile/export/bob.json").status_code == 404
    # while Bob sees his own
    client_bob = signed_in(bob)
    assert client_bob.get(f"/portal/rewards/claims/{claim.pk}/").status_code == 200
    assert client_bob.get(f"/portal/referrals/{referral.pk}/").status_code == 200
    assert json.loads(client_bob.get("/portal/profile/export/bob.json").content)["profile"]["external_id"] == "bob"


# --- home and history ------------------------------------------------------------------------------
def test_home_shows_balances_pending_with_dates_expiry_and_the_tier_card(client_anna, anna, api):
    html = client_anna.get("/portal/").content.decode()
    balances = api.get("/api/v1/members/anna/").json()["balances"]["PTS"]
    assert f'data-points="{balances["available"]}"' in html and balances["available"] == 700
    assert '<dd id="pending-points">125</dd>' in html  # 100 USD at VIB x1.25
    assert "Order #1042: 125 points, available on July 15, 2026" in html
    assert "825 on Dec. 15, 2027" in html  # inactivity expiry: 18 months after the last order
    assert '<p class="big" id="tier-name">VIB</p>' in html
    assert 'value="80"' in html and "Spend $200.00 more by Dec. 31, 2026 to reach Rouge." in html
    assert "Your status holds until Dec. 31, 2027." in html


def test_history_in_plain_words_with_filters_and_pages(client_anna, anna, program):
    html = client_anna.get("/portal/history/").content.decode()
    assert "Order #1042:" in html and "+125 points" in html and "pending until July 15, 2026" in html
    assert "Points now available (#1041)" in html
    earned = client_anna.get("/portal/history/?kind=earned").content.decode()
    assert "Order #1042" in earned
    assert "Nothing here yet." in client_anna.get("/portal/history/?kind=expired").content.decode()
    reward_claim(program=program, reward_id=reward(program, "Deluxe sample").pk, member_external_id="anna")
    redeemed = client_anna.get("/portal/history/?kind=redeemed").content.decode()
    assert "Reward claimed: Deluxe sample" in redeemed and "−100 points" in redeemed
    assert "Order #1042" not in redeemed
    # an unknown filter shows everything; pages of 20
    assert client_anna.get("/portal/history/?kind=bogus").status_code == 200
    for n in range(25):
        place_order(program, anna, "10.00", now=JUNE, external_id=f"many-{n}")
    page1 = client_anna.get("/portal/history/").content.decode()
    page2 = client_anna.get("/portal/history/?kind=&page=2").content.decode()
    assert "Page 1 of 2" in page1 and "Page 2 of 2" in page2
    assert page1.count('<li>\n      <span class="when">') == 20


# --- rewards ---------------------------------------------------------------------------------------
def test_claiming_a_reward_asks_for_confirmation_then_shows_the_coupon(client_anna, anna, program):
    sample = reward(program, "Deluxe sample")
    page = client_anna.get("/portal/rewards/").content.decode()
    assert f'href="/portal/rewards/{sample.pk}/claim/"' in page
    assert "Rouge Reward: $100 off" in page and "For a higher tier" in page

    confirm = client_anna.get(f"/portal/rewards/{sample.pk}/claim/")
    assert b"Confirm your reward" in confirm.content and RewardClaim.objects.count() == 0
    token = confirm.context["token"]
    done = client_anna.post(f"/portal/rewards/{sample.pk}/claim/", {"token": token}, follow=True)
    claim = RewardClaim.objects.get(member=anna)
    assert claim.coupon_code.encode() in done.content and available(anna) == 600
    # submitting the same confirmation again claims nothing more
    again = client_anna.post(f"/portal/rewards/{sample.pk}/claim/", {"token": token})
    assert again["Location"] == f"/portal/rewards/claims/{claim.pk}/"
    assert RewardClaim.objects.count() == 1 and available(anna) == 600
    # a forged or stale token claims nothing
    stale = client_anna.post(f"/portal/rewards/{sample.pk}/claim/", {"token": "forged"}, follow=True)
    assert b"This confirmation has expired" in stale.content and RewardClaim.objects.count() == 1
    # the code is listed on the rewards page
    assert claim.coupon_code in client_anna.get("/portal/rewards/").content.decode()


def test_a_claim_the_member_cannot_afford_shows_a_message_and_changes_nothing(client_anna, anna, program):
    ten_off = reward(program, "$10 off")
    sample = reward(program, "Deluxe sample")
    for _ in range(2):  # 700 -> 200: $10 off (500) is out of reach now
        reward_claim(program=program, reward_id=sample.pk, member_external_id="anna")
    reward_claim(program=program, reward_id=ten_off.pk, member_external_id="anna")
    assert available(anna) == 0
    token = client_anna.get(f"/portal/rewards/{sample.pk}/claim/").context["token"]
    response = client_anna.post(f"/portal/rewards/{sample.pk}/claim/", {"token": token}, follow=True)
    assert b"You do not have enough points for this yet." in response.content
    assert RewardClaim.objects.filter(member=anna).count() == 3 and available(anna) == 0
    page = client_anna.get("/portal/rewards/").content.decode()
    assert "Not enough points yet" in page


def test_rewards_of_another_program_or_inactive_are_404(client_anna, program):
    sample = reward(program, "Deluxe sample")
    sample.active = False
    sample.save()
    assert client_anna.get(f"/portal/rewards/{sample.pk}/claim/").status_code == 404
    assert client_anna.get("/portal/rewards/99999/claim/").status_code == 404


def test_birthday_choice_in_the_birthday_month(client_anna, anna):
    anna.birth_date = date(1990, 6, 2)
    anna.save(update_fields=["birth_date"])
    page = client_anna.get("/portal/rewards/").content.decode()
    assert "Choose your birthday reward" in page and "250 points instead" in page  # VIB
    bad = client_anna.post("/portal/rewards/birthday/", {"choice": "cake"}, follow=True)
    assert b"Choose the gift or the points." in bad.content and not BirthdayGift.objects.exists()
    done = client_anna.post("/portal/rewards/birthday/", {"choice": "points"}, follow=True)
    assert b"Happy birthday! 250 points are yours." in done.content and available(anna) == 950
    twice = client_anna.post("/portal/rewards/birthday/", {"choice": "gift"}, follow=True)
    assert b"already taken this year" in twice.content and BirthdayGift.objects.count() == 1


# --- referrals -------------------------------------------------------------------------------------
def test_referrals_show_the_code_link_and_friends(client_anna, anna, program):
    code = ReferralCode.objects.get(member=anna, retired_at__isnull=True).code
    friend = member_enroll(
        program=program,
        external_id="f1",
        email="f1@example.com",
        first_name="Bea",
        last_name="Nowak",
        referral_code=code,
    )
    html = client_anna.get("/portal/referrals/").content.decode()
    assert f'value="http://testserver/portal/join/{code}/"' in html and 'id="copy-link"' in html
    assert "Bea N." in html and "Waiting for their first order" in html
    assert "f1@example.com" not in html and "Nowak" not in html
    referral = Referral.objects.get(referee=friend)
    assert b"Bea N." in client_anna.get(f"/portal/referrals/{referral.pk}/").content


def test_the_join_page_enrolls_a_friend_with_the_code(anna, program, django_capture_on_commit_callbacks):
    code = ReferralCode.objects.get(member=anna, retired_at__isnull=True).code
    client = Client()
    page = client.get(f"/portal/join/{code}/")
    assert b"Anna invited you." in page.content and b"250 points" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(f"/portal/join/{code}/", {"email": "newbie@example.com", "first_name": "Nia"})
    assert done.status_code == 200 and b"We sent a link to newbie@example.com" in done.content
    newbie = Member.objects.get(email="newbie@example.com")
    assert Referral.objects.get(referee=newbie).referrer_id == anna.pk
    assert mail.outbox[-1].to == ["newbie@example.com"]
    # the same address again: a message, nobody new
    again = client.post(f"/portal/join/{code}/", {"email": "NEWBIE@example.com", "first_name": "Nia"})
    assert (
        b"already registered" in again.content
        and Member.objects.filter(email__iexact="newbie@example.com").count() == 1
    )
    # bad input: messages, nobody new
    bad = client.post(f"/portal/join/{code}/", {"email": "x", "first_name": ""})
    assert b"Enter a valid email address" in bad.content and Member.objects.count() == 2


def test_a_wrong_code_on_the_join_page_warns_and_guessing_is_rate_limited(db, program, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "referral_wrong_code": "2/h"},
    }
    client = Client()
    assert b"This referral code is not valid" in client.get("/portal/join/NOPE1234/").content
    client.get("/portal/join/NOPE1235/")
    assert client.get("/portal/join/NOPE1236/").status_code == 429


# --- badges and challenges -----------------------------------------------------------------------
@pytest.fixture
def opt_in_challenge(program):
    return Challenge.objects.create(
        program=program,
        code="june-club",
        name="June club",
        kind=CriterionKind.ORDER_COUNT,
        target=Decimal(2),
        starts_at=JUNE - timedelta(days=14),
        ends_at=JUNE + timedelta(days=15),
        opt_in=True,
        reward_points=100,
    )


def test_badges_and_challenges_with_join_and_leaderboard(client_anna, anna, opt_in_challenge):
    html = client_anna.get("/portal/badges/").content.decode()
    assert "Badges you earned" in html and "First Order" in html  # earned with the first order
    assert "Badges to earn" in html and "Big Spender" in html
    assert "June club" in html and f'action="/portal/challenges/{opt_in_challenge.pk}/join/"' in html
    assert "Skincare month" in html
    done = client_anna.post(f"/portal/challenges/{opt_in_challenge.pk}/join/", follow=True)
    assert b"You joined June club" in done.content
    assert ChallengeProgress.objects.get(challenge=opt_in_challenge, member=anna).joined_at == JUNE
    # joining a challenge everyone takes part in: a message, nothing changes
    skincare = Challenge.objects.get(code="skincare-month")
    refused = client_anna.post(f"/portal/challenges/{skincare.pk}/join/", follow=True)
    assert b"there is nothing to join" in refused.content
    assert client_anna.post("/portal/challenges/99999/join/").status_code == 404
    assert client_anna.get(f"/portal/challenges/{opt_in_challenge.pk}/join/").status_code == 405


def test_leaderboard_shows_masked_names_and_my_rank(client_anna, anna, bob, program):
    place_order(program, anna, "60.00", category="skincare", now=JUNE, external_id="s-1")
    place_order(program, bob, "80.00", category="skincare", now=JUNE, external_id="s-2")
    from loyalty.services.gamification import gamification_evaluate

    for m in (anna, bob):
        gamification_evaluate(member_id=m.pk, now=JUNE)
    html = client_anna.get("/portal/badges/").content.decode()
    assert "Bob B." in html and "Anna K." in html and "Your rank: 2" in html
    assert "bob@example.com" not in html and "Brown" not in html


# --- profile, data, closing ------------------------------------------------------------------------
def test_profile_saves_names_language_and_preferences(client_anna, anna):
    response = client_anna.post(
        "/portal/profile/",
        {"first_name": "Ania", "last_name": "Kowalska", "locale": "pl", "marketing_opt_in": "on"},
        follow=True,
    )
    assert "Profil został zapisany." in response.content.decode()
    anna.refresh_from_db()
    assert (anna.first_name, anna.locale, anna.marketing_opt_in) == ("Ania", "pl", True)


def test_profile_with_bad_input_shows_messages_and_changes_nothing(client_anna, anna):
    response = client_anna.post(
        "/portal/profile/",
        {"first_name": "", "last_name": "x" * 81, "locale": "xx", "birth_date": "2999-01-01"},
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Please correct the errors below." in html
    assert "This field is required" in html and "Select a valid choice" in html
    assert "The birth date cannot be in the future." in html
    assert Member.objects.get(pk=anna.pk).first_name == "Anna"


def test_birth_date_can_be_set_once_then_only_staff_change_it(client_anna, anna):
    form = {"first_name": "Anna", "last_name": "Kowalska", "locale": "en"}
    client_anna.post("/portal/profile/", {**form, "birth_date": "1990-06-02"})
    assert Member.objects.get(pk=anna.pk).birth_date == date(1990, 6, 2)
    page = client_anna.get("/portal/profile/").content.decode()
    assert 'name="birth_date"' not in page and "only our team can change it" in page
    client_anna.post("/portal/profile/", {**form, "birth_date": "1991-01-01"})
    assert Member.objects.get(pk=anna.pk).birth_date == date(1990, 6, 2)
    from loyalty.errors import LoyaltyError
    from loyalty.portal.services import member_profile_update

    with pytest.raises(LoyaltyError) as refused:
        member_profile_update(member=Member.objects.get(pk=anna.pk), birth_date=date(1991, 1, 1))
    assert refused.value.code == "birth_date_locked"


def test_download_my_data(client_anna, anna):
    response = client_anna.get("/portal/profile/export/anna.json")
    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["profile"]["email"] == "anna@example.com"
    assert {o["external_id"] for o in data["orders"]} == {"1041", "1042"}


def test_closing_the_account_needs_the_password_and_the_confirmation(client_anna, anna):
    refused = client_anna.post("/portal/profile/close/", {"password": "wrong"})
    assert b"Nothing was changed" in refused.content and b"The password is not right." in refused.content
    assert b"This field is required" in refused.content
    assert Member.objects.get(pk=anna.pk).status == MemberStatus.ACTIVE

    done = client_anna.post("/portal/profile/close/", {"password": PASSWORD, "confirm": "on"})
    assert done["Location"] == "/portal/closed/"
    erased = Member.objects.get(pk=anna.pk)
    assert erased.status == MemberStatus.CLOSED and erased.email.endswith("@erased.invalid")
    assert not PortalSession.objects.filter(user=erased.user).exists()
    assert client_anna.get("/portal/").status_code == 302
    assert Client().post("/portal/login/", {"email": "anna@example.com", "password": PASSWORD}).status_code == 200


# --- query counts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "page, most",
    [
        ("/portal/", 12),
        ("/portal/history/", 8),
        ("/portal/rewards/", 11),
        ("/portal/referrals/", 7),
        # one progress query per locked badge and per running challenge: grows with the program's
        # configuration (7 badges, 2 challenges in the demo), never with the member's history
        ("/portal/badges/", 18),
        ("/portal/profile/", 4),
    ],
)
def test_portal_pages_do_a_bounded_number_of_queries(
    client_anna, anna, bob, program, page, most, django_assert_max_num_queries
):
    # Given a member with a long history: many orders, claims, referrals
    for n in range(30):
        place_order(program, anna, "20.00", now=JUNE - timedelta(days=n), external_id=f"q-{n}")
    for _ in range(3):
        reward_claim(program=program, reward_id=reward(program, "Deluxe sample").pk, member_external_id="anna")
    code = ReferralCode.objects.get(member=anna, retired_at__isnull=True).code
    for n in range(5):
        member_enroll(program=program, external_id=f"r{n}", email=f"r{n}@example.com", referral_code=code)
    client_anna.get(page)  # warm the session

    # Then the page's queries do not grow with it
    with django_assert_max_num_queries(most):
        assert client_anna.get(page).status_code == 200


def test_rundemo_gives_a_demo_member_a_portal_login(db, tmp_path, monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setenv("DEMO_MEMBER_PASSWORD", "demo member pass 1")
    out = StringIO()
    call_command("rundemo", "--members", "3", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "Portal:" in text and "member0@example.com" in text and "demo member pass 1" in text
    assert (
        Client().post("/portal/login/", {"email": "member0@example.com", "password": "demo member pass 1"})["Location"]
        == "/portal/"
    )
