"""Abuse limits: each answers its 4xx as problem+json and writes nothing."""

import pytest

from loyalty.api.throttles import WritesByAddressThrottle, WritesByKeyThrottle
from loyalty.models import Event, IdempotencyRecord, Order

pytestmark = pytest.mark.usefixtures("june")


def order(n=1, **overrides):
    return {
        "external_id": f"A-{n}",
        "member": "anna",
        "currency": "USD",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "10.00"}],
    } | overrides


@pytest.mark.parametrize("throttle", [WritesByKeyThrottle, WritesByAddressThrottle])
def test_writes_are_rate_limited_per_key_and_per_address(api, member, monkeypatch, throttle):
    monkeypatch.setattr(throttle, "rate", "3/min", raising=False)
    for n in range(3):
        assert api.post("/api/v1/orders/", order(n), format="json").status_code == 201
    limited = api.post("/api/v1/orders/", order(9), format="json", HTTP_IDEMPOTENCY_KEY="k9")
    assert limited.status_code == 429 and limited["Content-Type"] == "application/problem+json"
    assert limited.json()["code"] == "rate_limited" and 0 < int(limited["Retry-After"]) <= 60
    assert Order.objects.count() == 3 and not IdempotencyRecord.objects.exists()
    assert api.get("/api/v1/members/anna/").status_code == 200  # reads are not counted


def test_a_body_over_the_limit_is_413(api, member, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    body = order(
        metadata={"note": "x" * 1500}, lines=[{"sku": f"S{i}", "quantity": 1, "unit_price": "1"} for i in range(20)]
    )
    response = api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="big")
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")
    assert not Order.objects.exists() and not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order(lines=[{"sku": "A", "quantity": 1, "unit_price": "1"}] * 501), "lines"),
        (order(metadata={"blob": "x" * 5000}), "metadata"),
        (order(metadata={"a": {"b": {"c": {"d": {"e": 1}}}}}), "metadata"),
        (order(lines=[{"sku": "S" * 65, "quantity": 1, "unit_price": "1"}]), "lines[0].sku"),
        (order(external_id="X" * 129), "external_id"),
        (order(lines=[{"sku": "A", "quantity": 100001, "unit_price": "1"}]), "lines[0].quantity"),
        (order(lines=[{"sku": "A", "quantity": 1, "unit_price": "1e20"}]), "lines[0].unit_price"),
    ],
)
def test_limits_on_lines_metadata_and_strings(api, member, body, field):
    response = api.post("/api/v1/orders/", body, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert field in [e["field"] for e in response.json()["errors"]]
    assert not Order.objects.exists()


def test_event_properties_are_bounded(api, member):
    response = api.post(
        "/api/v1/events/",
        {"member": "anna", "type": "review.posted", "properties": {"text": "x" * 20000}},
        format="json",
    )
    assert (response.status_code, response.json()["errors"][0]["field"]) == (400, "properties")
    assert not Event.objects.filter(type="review.posted").exists()


def test_the_write_counter_on_redis_counts_every_concurrent_hit_in_one_round_trip():
    """The throttles count with INCR (+ EXPIRE) in one pipeline: concurrent hits are never lost,
    whatever the rate (DRF's list of timestamps was rewritten whole by each request)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import redis
    from django.core.cache.backends.redis import RedisCache

    from loyalty.api.throttles import _hit

    url = os.environ.get("LOYALTY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if os.environ.get("LOYALTY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"LOYALTY_REQUIRE_SERVICES=1 but Redis does not answer at {url}")
        pytest.skip(f"needs Redis at {url}")
    cache = RedisCache(url, {"KEY_PREFIX": "throttle-test"})
    key = f"hits-{os.getpid()}"
    cache.delete(key)
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: _hit(cache, key, 30), range(200)))
    assert sorted(counts) == list(range(1, 201))
    assert 0 < cache._cache.get_client(key).ttl(cache.make_and_validate_key(key)) <= 30
    cache.delete(key)
