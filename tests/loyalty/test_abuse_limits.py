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


def test_sign_in_is_rate_limited_per_address_and_per_username(client, django_user_model, settings):
    settings.THROTTLE_SIGN_IN = "3/min"
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "right")
    for _ in range(3):
        wrong = client.post("/admin/login/", {"username": "boss", "password": "wrong"})
        assert wrong.status_code == 200  # the login form again, with its error
    # the 4th attempt is refused before the password is looked at: even the right one
    limited = client.post("/admin/login/", {"username": "boss", "password": "right"})
    assert (limited.status_code, limited["Content-Type"]) == (429, "application/problem+json")
    assert limited.json()["code"] == "rate_limited" and int(limited["Retry-After"]) == 60
    boss.refresh_from_db()
    assert boss.last_login is None and "_auth_user_id" not in client.session  # nothing written

    # another address trying the same username is limited too; another username from it is not
    other = client.post("/admin/login/", {"username": "BOSS", "password": "right"}, REMOTE_ADDR="10.9.9.9")
    assert other.status_code == 429
    fresh = client.post("/admin/login/", {"username": "someone", "password": "x"}, REMOTE_ADDR="10.9.9.9")
    assert fresh.status_code == 200
    assert client.get("/admin/login/").status_code == 200  # reading the page is not counted
    # a browser is told on a page, with the same status and Retry-After
    page = client.post("/admin/login/", {"username": "boss", "password": "right"}, HTTP_ACCEPT="text/html")
    assert (page.status_code, page["Retry-After"]) == (429, "60")
    assert "Too many sign-in attempts" in page.content.decode()


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
