"""Rate limits on every write, per API key and per client address (429 with Retry-After).

Reads are not counted here (code look-ups have their own, stricter limits). Rates are settings
(`THROTTLE_WRITES_PER_KEY`, `THROTTLE_WRITES_PER_ADDRESS`); counters live in the cache (Redis in
production, so every web node counts together)."""

from rest_framework.throttling import SimpleRateThrottle

from loyalty.models import ApiKey

SAFE = {"GET", "HEAD", "OPTIONS"}


class CountingThrottle(SimpleRateThrottle):
    """A fixed-window counter: one atomic increment per request.

    DRF's SimpleRateThrottle keeps a list of every request's time in the window and reads and rewrites
    it whole on each request: at 12,000 writes a minute that is a list of 12,000 floats pickled to and
    from the cache per request, and two concurrent requests can both write back a list missing the
    other. A counter per window is O(1), cannot lose counts, and on Redis costs one round trip. (A
    fixed window lets a client burst to twice the rate across a window's end: fine for abuse limits.)"""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        return _hit(self.cache, f"{self.key}:{window}", self.duration + 1) <= self.num_requests

    def wait(self):
        return max(1.0, self.window_ends - self.now)


def _hit(cache, key: str, ttl: int) -> int:
    """Count one hit on `key` (expiring after `ttl` seconds); -> the count so far."""
    client = getattr(cache, "_cache", None)
    if hasattr(client, "get_client"):  # Django's Redis cache: INCR and EXPIRE in one round trip
        full_key = cache.make_and_validate_key(key)
        pipe = client.get_client(full_key, write=True).pipeline()
        pipe.incr(full_key)
        pipe.expire(full_key, ttl)
        return pipe.execute()[0]
    if cache.add(key, 1, ttl):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, ttl)
        return 1


class WritesByKeyThrottle(CountingThrottle):
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


class WritesByAddressThrottle(CountingThrottle):
    scope = "writes_per_address"

    def get_cache_key(self, request, view):
        if request.method in SAFE:
            return None
        return f"throttle:{self.scope}:{self.get_ident(request)}"
