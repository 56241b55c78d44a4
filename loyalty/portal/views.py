"""The member portal: thin views over the portal's selectors and the program's services.

Every member page goes through `member_page`: signed in, not staff, an active member; the page's
language is the member's (profile), else the browser's. Objects addressed by id in a URL are
looked up within the signed-in member's own rows, so another member's id is a 404."""

import functools
import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from loyalty import errors
from loyalty.models import MemberStatus, RewardClaim
from loyalty.models.gamification import Challenge
from loyalty.portal import forms
from loyalty.portal.selectors import (
    HISTORY_FILTERS,
    badges_page,
    birthday_offer,
    history_line,
    history_transactions,
    home_summary,
    member_claims,
    member_referral_code,
    member_referrals,
    portal_member,
    portal_program,
    reward_catalog,
)
from loyalty.portal.services import member_profile_update, password_email_send
from loyalty.portal.throttles import client_address, join_lookup_limit, login_limits, password_email_limit
from loyalty.selectors.members import member_balances
from loyalty.services.gamification import challenge_join
from loyalty.services.members import member_enroll
from loyalty.services.privacy import member_erase, member_export
from loyalty.services.rewards import reward_claim
from referrals.services import InvalidReferralCode, referral_code_find, referral_policy
from tiers.services import birthday_take

HISTORY_PAGE = 20

# What members read when a service says no (the services' own messages are for staff and logs).
ERROR_MESSAGES = {
    "insufficient_points": gettext_lazy("You do not have enough points for this yet."),
    "out_of_stock": gettext_lazy("Sorry, this reward has just run out."),
    "tier_required": gettext_lazy("This reward is for a higher tier."),
    "claim_limit_reached": gettext_lazy("You have claimed this reward as often as allowed for now."),
    "reward_unavailable": gettext_lazy("This reward is not available."),
    "reward_not_found": gettext_lazy("This reward is not available."),
    "member_closed": gettext_lazy("Your account is closed."),
    "not_birthday_month": gettext_lazy("Birthday rewards are taken in your birthday month."),
    "birthday_taken": gettext_lazy("You have already taken this year's birthday reward."),
    "birthday_points_not_for_tier": gettext_lazy("Points instead of the gift are for higher tiers."),
    "challenge_not_open": gettext_lazy("This challenge is not running."),
    "challenge_not_opt_in": gettext_lazy("Everyone takes part in this challenge: there is nothing to join."),
    "birth_date_locked": gettext_lazy("Your birth date is set; please contact us to change it."),
    "member_exists": gettext_lazy("This e-mail address is already registered. Sign in or reset your password."),
    "invalid_referral_code": gettext_lazy("This referral code is not valid."),
    "already_referred": gettext_lazy("You already joined with a referral code."),
}
REASONS = {  # why a reward cannot be claimed yet
    "insufficient_points": gettext_lazy("Not enough points yet"),
    "out_of_stock": gettext_lazy("Out of stock"),
    "tier_required": gettext_lazy("For a higher tier"),
    "claim_limit_reached": gettext_lazy("Limit reached for now"),
    "reward_unavailable": gettext_lazy("Not available"),
}
REFERRAL_STATUSES = {
    "pending": gettext_lazy("Waiting for their first order"),
    "held": gettext_lazy("Being checked by our team"),
    "qualified": gettext_lazy("Rewarded"),
    "rejected": gettext_lazy("Not rewarded"),
}


def error_message(error: errors.LoyaltyError) -> str:
    return str(ERROR_MESSAGES.get(error.code, error.message))


def _language_of(member) -> str | None:
    codes = {code for code, _ in settings.LANGUAGES}
    wanted = (member.locale or "").replace("_", "-").lower()
    for candidate in (wanted, wanted.split("-")[0]):
        if candidate in codes:
            return candidate
    return None


def member_page(view):
    """Signed in as an active member (staff accounts get no member pages: 403)."""

    @functools.wraps(view)
    @never_cache
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:login')}?next={request.path}")
        member = portal_member(request.user)
        if member is None:
            status = 403 if request.user.is_staff else 404
            return render(request, "portal/not_a_member.html", {"staff": request.user.is_staff}, status=status)
        language = _language_of(member)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        request.member = member
        return view(request, *args, **kwargs)

    return wrapper


def _program_or_404():
    program = portal_program()
    if program is None:
        raise Http404("No program is set up for the portal")
    return program


def _safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


def _too_many(request, template: str, context: dict, seconds: int) -> HttpResponse:
    response = render(request, template, {**context, "rate_limited": True}, status=429)
    response["Retry-After"] = str(seconds)
    return response


# --- sign-in, sign-out, passwords -------------------------------------------------------------------
@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request):
    if request.user.is_authenticated and portal_member(request.user):
        return redirect("portal:home")
    form = forms.LoginForm(request.POST or None)
    context = {"form": form, "next": request.POST.get("next") or request.GET.get("next", "")}
    if request.method == "POST":
        by_email, by_address = login_limits()
        address = client_address(request)
        email = (request.POST.get("email") or "").strip().lower()[:254]
        if by_email.exceeded(email) or by_address.exceeded(address):
            messages.error(request, _("Too many attempts to sign in. Please wait a few minutes and try again."))
            return _too_many(request, "portal/login.html", context, by_email.seconds)
        if form.is_valid():
            user = authenticate(request, email=form.cleaned_data["email"], password=form.cleaned_data["password"])
            if user is not None:
                by_email.clear(email)
                login(request, user, backend="loyalty.portal.auth.MemberEmailBackend")
                return HttpResponseRedirect(_safe_next(request, reverse("portal:home")))
            by_email.hit(email)
            by_address.hit(address)
            form.add_error(None, _("The e-mail or the password is not right."))
    return render(request, "portal/login.html", context)


@require_POST
def logout_view(request):
    logout(request)
    messages.success(request, _("You are signed out."))
    return redirect("portal:login")


@csrf_protect
@never_cache
def password_reset_view(request):
    """Ask for a link to set a password. The answer never tells whether the address is registered."""
    form = forms.PasswordEmailForm(request.POST or None)
    if request.method == "POST":
        limit, address = password_email_limit(), client_address(request)
        if limit.exceeded(address):
            messages.error(request, _("Too many requests. Please try again later."))
            return _too_many(request, "portal/password_reset.html", {"form": form}, limit.seconds)
        if form.is_valid():
            limit.hit(address)
            program = portal_program()
            member = None
            if program is not None:
                member = (
                    program.members.filter(email__iexact=form.cleaned_data["email"], status=MemberStatus.ACTIVE)
                    .select_related("program", "user")
                    .first()
                )
            if member is not None and not (member.user_id and member.user.is_staff):
                password_email_send(member=member, kind="reset", base_url=request.build_absolute_uri("/"))
            return render(request, "portal/password_reset_sent.html", {"email": form.cleaned_data["email"]})
    return render(request, "portal/password_reset.html", {"form": form})


class PasswordSetView(PasswordResetConfirmView):
    """The link from the invitation or reset e-mail: choose a password, then you are signed in."""

    template_name = "portal/password_set.html"
    success_url = reverse_lazy("portal:home")
    post_reset_login = True
    post_reset_login_backend = "loyalty.portal.auth.MemberEmailBackend"

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, _("Your password is set. Welcome!"))
        return response


# --- join with a referral code ------------------------------------------------------------------------
@csrf_protect
@never_cache
def join_view(request, code: str = ""):
    """The referral link's page, and where new members enroll (with or without a code): the account
    is created at once, the password is set through the e-mailed link (which proves the address)."""
    program = _program_or_404()
    limit, address = join_lookup_limit(), client_address(request)
    referrer_name, code_valid = None, False
    if code:
        if limit.exceeded(address):
            messages.error(request, _("Too many attempts. Please try again later."))
            return _too_many(request, "portal/join.html", {"form": forms.JoinForm(), "code": code}, limit.seconds)
        found = referral_code_find(program=program, code=code) if referral_policy(program).active else None
        if found is None:
            limit.hit(address)
            messages.warning(request, _("This referral code is not valid. You can still join."))
            code = ""
        else:
            code_valid, referrer_name = True, found.member.first_name or None
    form = forms.JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            member = member_enroll(
                program=program,
                external_id=f"web-{secrets.token_hex(8)}",
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                locale=translation.get_language() or "",
                marketing_opt_in=data["marketing_opt_in"],
                referral_code=code or None,
                referral_context={"ip": address},
            )
        except InvalidReferralCode as error:
            limit.hit(address)
            form.add_error(None, error_message(error))
        except errors.LoyaltyError as error:
            form.add_error(None, error_message(error))
        else:
            return render(request, "portal/join_done.html", {"email": member.email})
    context = {
        "form": form,
        "code": code,
        "code_valid": code_valid,
        "referrer_name": referrer_name,
        "referee_points": referral_policy(program).referee_points if code_valid else None,
        "program": program,
    }
    return render(request, "portal/join.html", context)


# --- language ---------------------------------------------------------------------------------------
@require_POST
def language_view(request):
    language = request.POST.get("language", "")
    if language not in {code for code, _ in settings.LANGUAGES}:
        return redirect("portal:home")
    member = portal_member(request.user)
    if member is not None and member.locale != language:
        member_profile_update(member=member, locale=language)
    target = _safe_next(request, reverse("portal:home"))
    response = HttpResponseRedirect(target)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=365 * 24 * 3600,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response


# --- member pages -------------------------------------------------------------------------------------
@member_page
def home_view(request):
    member, now = request.member, timezone.now()
    return render(request, "portal/home.html", {"member": member, "summary": home_summary(member=member, now=now)})


@member_page
def history_view(request):
    member, now = request.member, timezone.now()
    kind = request.GET.get("kind") or None
    if kind not in HISTORY_FILTERS:
        kind = None
    paginator = Paginator(history_transactions(member=member, kind=kind), HISTORY_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    lines = [history_line(row, now=now) for row in page.object_list]
    filters = [
        ("", _("All")),
        ("earned", _("Earned")),
        ("redeemed", _("Redeemed")),
        ("expired", _("Expired")),
        ("adjusted", _("Adjusted")),
    ]
    return render(
        request, "portal/history.html", {"page": page, "lines": lines, "kind": kind or "", "filters": filters}
    )


def _available(member, now) -> int:
    return member_balances(member=member, now=now).get(member.program.primary_asset.code, {}).get("available", 0)


@member_page
def rewards_view(request):
    member, now = request.member, timezone.now()
    available = _available(member, now)
    catalog = reward_catalog(member=member, now=now, available=available)
    for entry in catalog["locked"]:
        entry["reason"] = REASONS.get(entry["why"], entry["why"])
    context = {
        "available": available,
        "catalog": catalog,
        "claims": member_claims(member=member)[:20],
        "birthday": birthday_offer(member=member, now=now),
        "birthday_form": forms.BirthdayForm(),
    }
    return render(request, "portal/rewards.html", context)


@member_page
def reward_claim_view(request, pk: int):
    """GET: confirm (cost, balance after). POST: claim once; a repeated submit of the same
    confirmation shows the first claim instead of claiming again."""
    member, now = request.member, timezone.now()
    reward = member.program.rewards.filter(pk=pk, active=True).select_related("min_tier").first()
    if reward is None:
        raise Http404
    tokens = request.session.setdefault("claim_tokens", {})
    if request.method == "POST":
        token = request.POST.get("token", "")
        if token not in tokens:
            messages.error(request, _("This confirmation has expired. Please confirm again."))
            return redirect("portal:reward_claim", pk=pk)
        if tokens[token]:  # submitted twice: the first claim stands
            return redirect("portal:claim", pk=tokens[token])
        try:
            claim = reward_claim(program=member.program, reward_id=reward.pk, member_external_id=member.external_id)
        except errors.LoyaltyError as error:
            messages.error(request, error_message(error))
            return redirect("portal:rewards")
        tokens[token] = claim.pk
        request.session.modified = True
        messages.success(request, _("Enjoy your reward! Here is your code."))
        return redirect("portal:claim", pk=claim.pk)
    token = secrets.token_urlsafe(16)
    tokens[token] = None
    if len(tokens) > 20:  # keep the session small
        for old in list(tokens)[:-20]:
            tokens.pop(old)
    request.session.modified = True
    available = _available(member, now)
    context = {"reward": reward, "available": available, "after": available - reward.cost, "token": token}
    return render(request, "portal/reward_confirm.html", context)


@member_page
def claim_view(request, pk: int):
    claim = RewardClaim.objects.filter(member=request.member, pk=pk).select_related("reward").first()
    if claim is None:
        raise Http404
    return render(request, "portal/claim.html", {"claim": claim})


@member_page
@require_POST
def birthday_view(request):
    form = forms.BirthdayForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose the gift or the points."))
        return redirect("portal:rewards")
    try:
        gift = birthday_take(member=request.member, choice=form.cleaned_data["choice"])
    except errors.LoyaltyError as error:
        messages.error(request, error_message(error))
    else:
        if gift.points:
            messages.success(request, _("Happy birthday! %(points)s points are yours.") % {"points": gift.points})
        else:
            messages.success(request, _("Happy birthday! Your gift code is %(code)s.") % {"code": gift.coupon_code})
    return redirect("portal:rewards")


@member_page
def referrals_view(request):
    member = request.member
    code = member_referral_code(member=member)
    link = request.build_absolute_uri(reverse("portal:join", kwargs={"code": code})) if code else None
    referrals = list(member_referrals(member=member))
    for referral in referrals:
        referral.status_text = REFERRAL_STATUSES.get(referral.status, referral.status)
    policy = referral_policy(member.program)
    context = {"code": code, "link": link, "referrals": referrals, "policy": policy}
    return render(request, "portal/referrals.html", context)


@member_page
def referral_view(request, pk: int):
    referral = member_referrals(member=request.member).filter(pk=pk).first()
    if referral is None:
        raise Http404
    referral.status_text = REFERRAL_STATUSES.get(referral.status, referral.status)
    return render(request, "portal/referral.html", {"referral": referral})


@member_page
def badges_view(request):
    member, now = request.member, timezone.now()
    return render(request, "portal/badges.html", badges_page(member=member, now=now))


@member_page
@require_POST
def challenge_join_view(request, pk: int):
    challenge = Challenge.objects.filter(program=request.member.program, pk=pk).select_related("program").first()
    if challenge is None:
        raise Http404
    try:
        challenge_join(challenge=challenge, member=request.member)
    except errors.LoyaltyError as error:
        messages.error(request, error_message(error))
    else:
        messages.success(request, _("You joined %(name)s. Good luck!") % {"name": challenge.name})
    return redirect("portal:badges")


@member_page
def profile_view(request):
    member = request.member
    initial = {
        "first_name": member.first_name,
        "last_name": member.last_name,
        "birth_date": member.birth_date,
        "locale": _language_of(member) or translation.get_language(),
        "marketing_opt_in": member.marketing_opt_in,
    }
    form = forms.ProfileForm(request.POST or None, initial=initial, member=member)
    if request.method == "POST":
        if form.is_valid():
            try:
                member_profile_update(member=member, **form.cleaned_data)
            except errors.LoyaltyError as error:
                messages.error(request, error_message(error))
            else:
                translation.activate(member.locale)
                request.LANGUAGE_CODE = member.locale
                messages.success(request, _("Your profile is saved."))
                response = redirect("portal:profile")
                response.set_cookie(settings.LANGUAGE_COOKIE_NAME, member.locale, max_age=365 * 24 * 3600)
                return response
        else:
            messages.error(request, _("Please correct the errors below."))
    export_url = reverse("portal:export", kwargs={"external_id": member.external_id})
    return render(request, "portal/profile.html", {"form": form, "member": member, "export_url": export_url})


@member_page
def export_view(request, external_id: str):
    member = request.member
    if external_id != member.external_id:
        raise Http404
    response = JsonResponse(member_export(member=member), json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = 'attachment; filename="my-loyalty-data.json"'
    return response


@sensitive_post_parameters("password")
@member_page
def close_view(request):
    member = request.member
    form = forms.CloseAccountForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            member_erase(member=member, actor=request.user, reason="Closed by the member in the portal")
            logout(request)
            return redirect("portal:closed")
        messages.error(request, _("Nothing was changed. Please correct the errors below."))
    return render(request, "portal/close.html", {"form": form})


def closed_view(request):
    return render(request, "portal/closed.html")
