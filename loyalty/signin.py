"""Rate limits on the staff admin's sign-in: every POST to a sign-in page counts against the client
address and against the username tried, and past the limit the answer is 429 with Retry-After
(problem+json, or a page saying so when a browser asks for HTML), before any password is checked
or any session written. Counters live in the cache (Redis in production, so every web node counts
together). The member portal limits its failed sign-ins itself (loyalty/portal/throttles.py)."""

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from django.shortcuts import render

from loyalty.api.errors import PROBLEM, problem

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def sign_in_limit() -> tuple[int, int]:
    """(attempts allowed, per seconds) from THROTTLE_SIGN_IN, e.g. "10/min"."""
    number, period = settings.THROTTLE_SIGN_IN.split("/")
    return int(number), PERIODS[period[0]]


class SignInThrottleMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path in settings.SIGN_IN_PATHS:
            allowed, seconds = sign_in_limit()
            keys = [f"throttle:sign_in:ip:{request.META.get('REMOTE_ADDR', '')}"]
            username = (request.POST.get("username") or "").strip().lower()[:150]
            if username:
                keys.append(f"throttle:sign_in:user:{username}")
            if any(count >= allowed for count in cache.get_many(keys).values()):
                body = problem(
                    429,
                    "rate_limited",
                    "Too many sign-in attempts",
                    f"At most {allowed} attempts in {seconds} seconds; try again later.",
                )
                if "text/html" in request.headers.get("Accept", ""):
                    response = render(request, "admin/sign_in_limited.html", {"problem": body}, status=429)
                else:
                    response = JsonResponse(body, status=429, content_type=PROBLEM)
                response["Retry-After"] = str(seconds)
                return response
            for key in keys:
                if not cache.add(key, 1, timeout=seconds):
                    try:
                        cache.incr(key)
                    except ValueError:  # expired in between
                        cache.set(key, 1, timeout=seconds)
        return self.get_response(request)
