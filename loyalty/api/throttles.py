"""Rate limits on every write, per API key and per client address (429 with Retry-After).

Reads are not counted here (code look-ups have their own, stricter limits). Rates are settings
(`THROTTLE_WRITES_PER_KEY`, `THROTTLE_WRITES_PER_ADDRESS`); counters live in the cache (Redis in
production, so every web node counts together)."""

from rest_framework.throttling import SimpleRateThrottle

from loyalty.models import ApiKey

SAFE = {"GET", "HEAD", "OPTIONS"}


class WritesByKeyThrottle(SimpleRateThrottle):
    scope = "writes_per_key"

    def get_cache_key(self, request, view):
        if request.method in SAFE:
            return None
        who = (
            f"key:{request.auth.pk}"
            if isinstance(request.auth, ApiKey)
            else (f"user:{request.user.pk}" if getattr(request.user, "pk", None) else None)
        )
        return f"throttle:{self.scope}:{who}" if who else None


class WritesByAddressThrottle(SimpleRateThrottle):
    scope = "writes_per_address"

    def get_cache_key(self, request, view):
        if request.method in SAFE:
            return None
        return f"throttle:{self.scope}:{self.get_ident(request)}"
