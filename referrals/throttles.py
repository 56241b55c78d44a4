"""Rate limits that stop referral codes being guessed: look-ups, and enrollments with a wrong code,
each counted per API key and per client address (whichever runs out first)."""

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from loyalty.models import ApiKey


def _client_keys(request, scope: str) -> list[str]:
    keys = [f"throttle:{scope}:ip:{request.META.get('REMOTE_ADDR', '')}"]
    if isinstance(request.auth, ApiKey):
        keys.append(f"throttle:{scope}:key:{request.auth.pk}")
    return keys


class ReferralLookupByKeyThrottle(SimpleRateThrottle):
    scope = "referral_lookup"

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:key:{request.auth.pk}" if isinstance(request.auth, ApiKey) else None


class ReferralLookupByAddressThrottle(SimpleRateThrottle):
    scope = "referral_lookup"

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:ip:{self.get_ident(request)}"


def wrong_code_limit() -> tuple[int, int]:
    """(allowed wrong codes, per seconds)."""
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["referral_wrong_code"]
    number, period = rate.split("/")
    return int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def wrong_codes_check(request) -> None:
    """Refuse (429) an enrollment with a code from a client that sent too many wrong codes."""
    allowed, seconds = wrong_code_limit()
    counts = cache.get_many(_client_keys(request, "referral_wrong_code"))
    if any(count >= allowed for count in counts.values()):
        raise Throttled(wait=seconds, detail="Too many enrollments with a wrong referral code; try later")


def wrong_code_record(request) -> None:
    _, seconds = wrong_code_limit()
    for key in _client_keys(request, "referral_wrong_code"):
        if cache.add(key, 1, timeout=seconds):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired in between
            cache.set(key, 1, timeout=seconds)
