"""The checkout contract (api.md): statuses, bodies, problem+json codes, idempotency, auth.
Every response is also checked against the OpenAPI schema by the `api` client."""

from datetime import timedelta
from io import StringIO

import pytest

from loyalty.models import Event, IdempotencyRecord, Order, Program, Redemption, Transaction
from loyalty.services.access import api_key_create, api_key_revoke
from loyalty.services.adjustments import points_adjust
from loyalty.services.programs import program_create
from tests.conftest import JUNE
from tests.factories import place_order

pytestmark = pytest.mark.usefixtures("june")


def order_body(external_id="O-1", member="anna", **overrides):
    body = {
        "external_id": external_id,
        "member": member,
        "currency": "USD",
        "lines": [{"sku": "LIP-1", "category": "makeup", "quantity": 2, "unit_price": "12.50"}],
    }
    return body | overrides


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


# --- members ------------------------------------------------------------------------------------
def test_enroll_read_and_update_a_member(api, program):
    created = api.post(
        "/api/v1/members/", {"external_id": "c-1", "email": "Zoe@Example.com", "first_name": "Zoe"}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    assert body["tier"]["code"] == "insider"
    assert body["balances"] == {"PTS": {"available": 0, "pending": 0, "held": 0}}
    assert len(body["referral_code"]) == 8
    patched = api.patch("/api/v1/members/c-1/", {"last_name": "Ng", "locale": "pl"}, format="json")
    assert patched.json()["last_name"] == "Ng"
    assert_problem(
        api.post("/api/v1/members/", {"external_id": "c-2", "email": "zoe@example.com"}, format="json"),
        409,
        "member_exists",
    )
    assert_problem(api.get("/api/v1/members/nobody/"), 404, "member_not_found")


def test_member_detail_shows_expiring_points(api, program, member):
    place_order(program, member, "100.00", placed_at=JUNE)
    body = api.get("/api/v1/members/anna/").json()
    assert body["expiring"]["PTS"]["points"] == 100
    assert body["expiring"]["PTS"]["expires_at"].startswith("2027-12-15")


def test_member_transactions_newest_first_with_cursor_pages(api, program, member):
    for i in range(3):
        place_order(program, member, "10.00", placed_at=JUNE - timedelta(days=40 - i), external_id=f"H-{i}")
    api.get("/api/v1/members/anna/")  # reads never post
    first = api.get("/api/v1/members/anna/transactions/?page_size=2").json()
    assert [t["order"] for t in first["results"]] == ["H-2", "H-1"]
    assert first["results"][0]["points"] == 10 and first["results"][0]["balance_after"] == {"pending": 30}
    second = api.get(first["next"].replace("http://testserver", "")).json()
    assert [t["order"] for t in second["results"]] == ["H-0"]


# --- orders -------------------------------------------------------------------------------------
def test_place_read_refund_and_cancel_an_order(api, member):
    placed = api.post("/api/v1/orders/", order_body(), format="json")
    assert placed.status_code == 201
    assert (placed.json()["points_earned"], placed.json()["status"]) == (25, "pending")
    refund = api.post("/api/v1/orders/O-1/refunds/", {"external_id": "R-1", "amount": "12.50"}, format="json")
    assert refund.status_code == 201
    # the order keeps what the remaining merchandise would earn: floor(12.50) = 12 of 25
    assert (refund.json()["points_reversed"], refund.json()["order_status"]) == (13, "partially_refunded")
    by_lines = api.post(
        "/api/v1/orders/O-1/refunds/", {"external_id": "R-2", "lines": [{"sku": "LIP-1", "quantity": 1}]}, format="json"
    )
    assert by_lines.status_code == 201
    got = api.get("/api/v1/orders/O-1/").json()
    assert [r["external_id"] for r in got["refunds"]] == ["R-1", "R-2"]
    cancelled = api.post("/api/v1/orders/O-1/cancel/", {}, format="json")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")


def test_second_post_of_the_same_order_without_a_key_is_409(api, member):
    assert api.post("/api/v1/orders/", order_body(), format="json").status_code == 201
    assert_problem(api.post("/api/v1/orders/", order_body(), format="json"), 409, "order_exists")
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"currency": "XYZ"}, 400, "unknown_currency", "currency"),
        ({"currency": "CHF"}, 422, "currency_not_accepted", None),
        ({"lines": [{"sku": "A", "quantity": 0, "unit_price": "1.00"}]}, 400, "validation_error", "lines[0].quantity"),
        ({"lines": [{"sku": "A", "quantity": -1, "unit_price": "1.00"}]}, 400, "validation_error", "lines[0].quantity"),
        ({"lines": [{"sku": "A", "quantity": 1, "unit_price": "0"}]}, 400, "validation_error", "lines[0].unit_price"),
        ({"lines": [{"sku": "A", "quantity": 1, "unit_price": "-5"}]}, 400, "validation_error", "lines[0].unit_price"),
        (
            {"lines": [{"sku": "A", "quantity": 1, "unit_price": "1.005"}]},
            400,
            "validation_error",
            "lines[0].unit_price",
        ),
        (
            {"lines": [{"sku": "A", "quantity": 1, "unit_price": "5", "discount": "6"}]},
            400,
            "validation_error",
            "lines[0].discount",
        ),
        ({"lines": []}, 400, "validation_error", "lines"),
        ({"lines": [{"sku": "A", "quantity": 2, "unit_price": "999999999999"}]}, 400, "amount_too_large", "lines"),
        ({"external_id": "a/b"}, 400, "validation_error", "external_id"),
        ({"external_id": "quote"}, 400, "validation_error", "external_id"),
        ({"metadata": {"note": "x\u0000y"}}, 400, "validation_error", "metadata"),
        ({"member": "ghost"}, 404, "member_not_found", None),
        (
            {"currency": "JPY", "lines": [{"sku": "A", "quantity": 1, "unit_price": "100.5"}]},
            400,
            "validation_error",
            "lines[0].unit_price",
        ),
    ],
)
def test_bad_orders_are_refused_with_a_specific_problem_and_post_nothing(api, member, change, status, code, field):
    body = assert_problem(api.post("/api/v1/orders/", order_body(**change), format="json"), status, code)
    if field:
        assert field in [e["field"] for e in body["errors"]]
    assert not Order.objects.exists() and not Transaction.objects.exists()


def test_malformed_json_and_wrong_media_type(api, member):
    assert_problem(api.post("/api/v1/orders/", "{not json", content_type="application/json"), 400, "malformed_json")
    assert_problem(
        api.post("/api/v1/orders/", "a=b", content_type="application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )


def test_refund_problems(api, member):
    api.post("/api/v1/orders/", order_body(), format="json")
    assert_problem(
        api.post("/api/v1/orders/O-1/refunds/", {"external_id": "R", "amount": "25.01"}, format="json"),
        422,
        "refund_exceeds_order",
    )
    assert_problem(
        api.post("/api/v1/orders/NOPE/refunds/", {"external_id": "R", "amount": "1"}, format="json"),
        404,
        "order_not_found",
    )
    assert_problem(
        api.post("/api/v1/orders/O-1/refunds/", {"external_id": "R"}, format="json"), 400, "validation_error"
    )
    assert_problem(  # more decimals than the currency has
        api.post("/api/v1/orders/O-1/refunds/", {"external_id": "R", "amount": "0.004"}, format="json"),
        400,
        "invalid_input",
    )
    assert not Transaction.objects.filter(kind="clawback").exists()
    assert not Order.objects.get(external_id="O-1").refunds.exists()


def test_hostile_input_gets_a_4xx_never_a_500(api, member):
    # A NUL character in a path, in a query, or in a stored JSON object
    assert_problem(api.get("/api/v1/members/an%00na/"), 400, "invalid_input")
    assert_problem(api.get("/api/v1/members/anna/transactions/?cursor=%00"), 400, "invalid_input")
    assert_problem(
        api.post("/api/v1/events/", {"member": "anna", "type": "x", "properties": {"a": "x\u0000y"}}, format="json"),
        400,
        "validation_error",
    )
    # JSON nested deeper than Python parses
    assert_problem(api.post("/api/v1/orders/", "[" * 5000, content_type="application/json"), 400, "malformed_json")
    # A forged cursor (a valid encoding of a position that is not an id)
    import base64

    forged = base64.b64encode(b"p=abc").decode()
    assert_problem(api.get(f"/api/v1/members/anna/transactions/?cursor={forged}"), 400, "validation_error")
    assert_problem(api.get(f"/api/v1/rewards/?cursor={forged}"), 400, "validation_error")
    assert not Event.objects.filter(type="x").exists()


def test_an_order_too_large_for_the_books_after_conversion_is_refused(api, member, program):
    # Just under the limit in EUR, over it in the base currency at the program's EUR rate (above 1)
    body = order_body(currency="EUR", lines=[{"sku": "A", "quantity": 1, "unit_price": "999999999999"}])
    assert_problem(api.post("/api/v1/orders/", body, format="json"), 400, "amount_too_large")
    batch = api.post("/api/v1/orders/batch/", {"orders": [body, order_body(external_id="O-2")]}, format="json")
    assert batch.status_code == 200, batch.content
    results = {r["external_id"]: r for r in batch.json()["results"]}
    assert results["O-1"]["status"] == "rejected" and results["O-1"]["problem"]["code"] == "amount_too_large"
    assert results["O-2"]["status"] == "created"
    assert list(Order.objects.values_list("external_id", flat=True)) == ["O-2"]


def test_a_retry_may_rebuild_its_body_in_another_key_order(api, member):
    first = order_body()
    again = dict(reversed(list(first.items())))
    assert api.post("/api/v1/orders/", first, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    replay = api.post("/api/v1/orders/", again, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_a_quote_takes_an_idempotency_key_too(api, member):
    first = api.post("/api/v1/orders/quote/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="q")
    assert first.status_code == 200
    assert (
        api.post("/api/v1/orders/quote/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="q")["Idempotent-Replayed"]
        == "true"
    )
    other = order_body(lines=[{"sku": "B", "quantity": 1, "unit_price": "5.00"}])
    assert_problem(
        api.post("/api/v1/orders/quote/", other, format="json", HTTP_IDEMPOTENCY_KEY="q"), 409, "idempotency_key_reused"
    )


# --- redemptions and rewards --------------------------------------------------------------------
@pytest.fixture
def rich(program, member, staff):
    """1,200 available points, still an Insider (a staff credit, not spend)."""
    points_adjust(member=member, points=1200, reason="test funds", staff_user=staff, now=JUNE - timedelta(days=1))
    return member


def test_hold_capture_void_through_the_api(api, rich):
    held = api.post(
        "/api/v1/redemptions/", {"member": "anna", "points": 500, "order_external_id": "O-9"}, format="json"
    )
    assert held.status_code == 201
    assert (held.json()["status"], held.json()["value"]) == ("held", {"amount": "10.00", "currency": "USD"})
    rid = held.json()["id"]
    assert api.post(f"/api/v1/redemptions/{rid}/capture/").json()["status"] == "captured"
    other = api.post("/api/v1/redemptions/", {"member": "anna", "points": 500}, format="json").json()["id"]
    assert api.post(f"/api/v1/redemptions/{other}/void/").json()["status"] == "voided"
    assert_problem(api.post(f"/api/v1/redemptions/{other}/capture/"), 422, "hold_voided")
    assert_problem(
        api.post("/api/v1/redemptions/", {"member": "anna", "points": 750}, format="json"), 422, "redemption_step"
    )
    assert_problem(
        api.post("/api/v1/redemptions/", {"member": "anna", "points": 5000}, format="json"), 422, "insufficient_points"
    )
    assert_problem(api.post("/api/v1/redemptions/999999/capture/"), 404, "redemption_not_found")


def test_capture_of_an_expired_hold(api, rich, june):
    rid = api.post("/api/v1/redemptions/", {"member": "anna", "points": 500, "ttl_seconds": 30}, format="json").json()[
        "id"
    ]
    june.shift(timedelta(seconds=31))
    assert_problem(api.post(f"/api/v1/redemptions/{rid}/capture/"), 422, "hold_expired")
    assert api.get("/api/v1/members/anna/").json()["balances"]["PTS"]["available"] == 1200


def test_catalog_and_claim(api, rich):
    catalog = api.get("/api/v1/rewards/").json()["results"]
    names = {r["name"]: r for r in catalog}
    assert names["Rouge Reward: $100 off"]["tier_needed"] == "rouge"
    claimed = api.post(f"/api/v1/rewards/{names['Deluxe sample']['id']}/claim/", {"member": "anna"}, format="json")
    assert claimed.status_code == 201 and claimed.json()["coupon_code"].startswith("SAMPLE-")
    assert_problem(
        api.post(f"/api/v1/rewards/{names['Rouge Reward: $100 off']['id']}/claim/", {"member": "anna"}, format="json"),
        422,
        "tier_required",
    )


def test_custom_events_are_stored_once(api, member):
    body = {"id": "rev-1", "member": "anna", "type": "review.posted", "properties": {"stars": 5}}
    assert api.post("/api/v1/events/", body, format="json").status_code == 201
    again = api.post("/api/v1/events/", body, format="json")
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert Event.objects.filter(type="review.posted").count() == 1
    assert_problem(
        api.post("/api/v1/events/", body | {"id": "x", "type": "Not A Type"}, format="json"), 400, "validation_error"
    )


# --- idempotency ----------------------------------------------------------------------------------
def test_a_retry_with_the_same_key_replays_the_first_answer_and_changes_nothing(api, member):
    first = api.post("/api/v1/orders/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = api.post("/api/v1/orders/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Order.objects.count() == 1 and Transaction.objects.count() == 1


def test_the_same_key_with_another_body_is_409(api, member):
    api.post("/api/v1/orders/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert_problem(
        api.post("/api/v1/orders/", order_body("O-2"), format="json", HTTP_IDEMPOTENCY_KEY="k-1"),
        409,
        "idempotency_key_reused",
    )
    assert_problem(
        api.post("/api/v1/orders/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="k" * 256),
        400,
        "invalid_idempotency_key",
    )


def test_a_refused_request_is_replayed_refused_and_posts_nothing(api, rich):
    body = {"member": "anna", "points": 5000}
    first = api.post("/api/v1/redemptions/", body, format="json", HTTP_IDEMPOTENCY_KEY="h-1")
    again = api.post("/api/v1/redemptions/", body, format="json", HTTP_IDEMPOTENCY_KEY="h-1")
    assert first.status_code == again.status_code == 422 and again["Idempotent-Replayed"] == "true"
    assert not Redemption.objects.exists()
    assert IdempotencyRecord.objects.get().status_code == 422


def test_keys_are_per_program(api, member, program):
    other = program_create(code="other", name="Other")
    client_other = type(api)()
    client_other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(program=other, name='x')[1]}")
    api.post("/api/v1/orders/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="same")
    # the same key in another program is another key (and that program has no member anna)
    assert_problem(
        client_other.post("/api/v1/orders/", order_body(), format="json", HTTP_IDEMPOTENCY_KEY="same"),
        404,
        "member_not_found",
    )


# --- auth ---------------------------------------------------------------------------------------
def test_missing_bad_revoked_and_other_programs_keys(program, member, api_key):
    from tests.conftest import CheckedClient

    client = CheckedClient()
    assert_problem(client.get("/api/v1/members/anna/"), 401, "unauthenticated")
    client.credentials(HTTP_AUTHORIZATION="Bearer lk_deadbeef_nope")
    assert_problem(client.get("/api/v1/members/anna/"), 401, "invalid_api_key")
    key, raw = api_key_create(program=program, name="old")
    api_key_revoke(key=key)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_problem(client.post("/api/v1/orders/", order_body(), format="json"), 401, "revoked_api_key")
    other = program_create(code="other", name="Other")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(program=other, name='o')[1]}")
    assert_problem(client.get("/api/v1/members/anna/"), 404, "member_not_found")  # anna is not theirs
    assert not Order.objects.exists()
    assert Program.objects.count() == 2


def test_a_key_without_the_scope_is_403(program, member):
    from tests.conftest import CheckedClient

    client = CheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(program=program, name='ro', scopes=['members'])[1]}")
    assert client.get("/api/v1/members/anna/").status_code == 200
    assert_problem(client.post("/api/v1/orders/", order_body(), format="json"), 403, "missing_scope")


def test_unknown_api_path_is_problem_json(client):
    assert_problem(client.get("/api/v1/nothing-here/"), 404, "not_found")


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/orders/quote/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()


def test_the_openapi_schema_generates_without_warnings():
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=StringIO(), stderr=StringIO())


# --- each bad input posts nothing -----------------------------------------------------------------
def ledger_rows():
    from loyalty.models import Entry, Lot, LotMovement

    return (Transaction.objects.count(), Entry.objects.count(), Lot.objects.count(), LotMovement.objects.count())


def test_capture_of_a_voided_or_expired_hold_and_an_off_step_redemption_post_nothing(api, rich, june):
    voided = api.post("/api/v1/redemptions/", {"member": "anna", "points": 500}, format="json").json()["id"]
    api.post(f"/api/v1/redemptions/{voided}/void/")
    short = api.post("/api/v1/redemptions/", {"member": "anna", "points": 500, "ttl_seconds": 30}, format="json")
    june.shift(timedelta(seconds=31))
    before, redemptions = ledger_rows(), Redemption.objects.count()
    assert_problem(api.post(f"/api/v1/redemptions/{voided}/capture/"), 422, "hold_voided")
    assert_problem(api.post(f"/api/v1/redemptions/{short.json()['id']}/capture/"), 422, "hold_expired")
    assert_problem(
        api.post("/api/v1/redemptions/", {"member": "anna", "points": 501}, format="json"), 422, "redemption_step"
    )
    assert (ledger_rows(), Redemption.objects.count()) == (before, redemptions)
    assert not Transaction.objects.filter(kind="capture").exists()


def test_refund_beyond_the_order_or_of_an_unknown_order_posts_nothing(api, member):
    api.post("/api/v1/orders/", order_body(), format="json")
    before = ledger_rows()
    assert_problem(
        api.post("/api/v1/orders/O-1/refunds/", {"external_id": "R", "amount": "25.01"}, format="json"),
        422,
        "refund_exceeds_order",
    )
    assert_problem(
        api.post(
            "/api/v1/orders/O-1/refunds/",
            {"external_id": "R", "lines": [{"sku": "LIP-1", "quantity": 3}]},
            format="json",
        ),
        422,
        "refund_exceeds_order",
    )
    assert_problem(
        api.post("/api/v1/orders/NOPE/refunds/", {"external_id": "R", "amount": "1"}, format="json"),
        404,
        "order_not_found",
    )
    assert ledger_rows() == before and not Order.objects.get().refunds.exists()
    assert Order.objects.get().status == "pending"


def test_malformed_json_and_bad_keys_post_nothing(program, api, rich):
    from tests.conftest import CheckedClient

    before, orders = ledger_rows(), Order.objects.count()
    assert_problem(api.post("/api/v1/orders/", "{not json", content_type="application/json"), 400, "malformed_json")
    client = CheckedClient()
    assert_problem(client.post("/api/v1/orders/", order_body(), format="json"), 401, "unauthenticated")
    key, raw = api_key_create(program=program, name="old")
    api_key_revoke(key=key)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_problem(client.post("/api/v1/orders/", order_body(), format="json"), 401, "revoked_api_key")
    assert (ledger_rows(), Order.objects.count()) == (before, orders)
    # another program's key reaches none of this program's members, orders or holds
    held = api.post("/api/v1/redemptions/", {"member": "anna", "points": 500}, format="json").json()["id"]
    api.post("/api/v1/orders/", order_body("MINE"), format="json")
    before, orders = ledger_rows(), Order.objects.count()
    other = program_create(code="other", name="Other")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(program=other, name='o')[1]}")
    assert_problem(client.post("/api/v1/orders/", order_body("O-X"), format="json"), 404, "member_not_found")
    assert_problem(client.post(f"/api/v1/redemptions/{held}/capture/"), 404, "redemption_not_found")
    assert_problem(client.post(f"/api/v1/redemptions/{held}/void/"), 404, "redemption_not_found")
    assert_problem(
        client.post("/api/v1/orders/MINE/refunds/", {"external_id": "R", "amount": "1"}, format="json"),
        404,
        "order_not_found",
    )
    assert_problem(client.post("/api/v1/orders/MINE/cancel/", {}, format="json"), 404, "order_not_found")
    assert_problem(client.get("/api/v1/orders/MINE/"), 404, "order_not_found")
    assert (ledger_rows(), Order.objects.count()) == (before, orders)
    assert Redemption.objects.get(pk=held).status == "held"
