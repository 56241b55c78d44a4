"""Cache-backed counters that slow down guessing in the portal (as referrals/throttles.py does for
the API): failed sign-ins per e-mail and per client address, password e-mails per address, and
referral-code look-ups on the join page. Counters live in the cache (Redis in production, so every
web node counts together) and expire on their own."""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class Limit:
    scope: str
    allowed: int
    seconds: int

    def _key(self, who: str) -> str:
        # hashed: an e-mail is personal data, and any character is safe in a key this way
        return f"portal:{self.scope}:{hashlib.sha256(who.encode()).hexdigest()[:32]}"

    def exceeded(self, *whos: str) -> bool:
        counts = cache.get_many([self._key(w) for w in whos if w])
        return any(count >= self.allowed for count in counts.values())

    def hit(self, *whos: str) -> None:
        for who in whos:
            if not who:
                continue
            key = self._key(who)
            if cache.add(key, 1, timeout=self.seconds):
                continue
            try:
                cache.incr(key)
            except ValueError:  # expired in between
                cache.set(key, 1, timeout=self.seconds)

    def clear(self, *whos: str) -> None:
        cache.delete_many([self._key(w) for w in whos if w])


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def login_limits() -> tuple[Limit, Limit]:
    """(per e-mail, per address): failed sign-ins before a pause."""
    pause = settings.PORTAL_LOGIN_PAUSE_SECONDS
    return (
        Limit("login-email", settings.PORTAL_LOGIN_FAILURES, pause),
        Limit("login-address", settings.PORTAL_LOGIN_FAILURES_PER_ADDRESS, pause),
    )


def password_email_limit() -> Limit:
    return Limit("password-email", settings.PORTAL_PASSWORD_EMAILS_PER_ADDRESS, 3600)


def join_lookup_limit() -> Limit:
    """Wrong referral codes on the join page per address (the API's referral_wrong_code rate)."""
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["referral_wrong_code"]
    number, period = rate.split("/")
    return Limit("join-code", int(number), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]])
