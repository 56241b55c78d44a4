from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from rest_framework.test import APIClient

from loyalty.demo import demo_program_seed
from loyalty.selectors.ledger import ledger_problems
from loyalty.services.access import api_key_create
from tests.factories import MemberFactory
from tests.openapi import validate_response

# A quiet day outside every demo promotion (Spring Savings is in April, the skincare bonus in May).
JUNE = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def pytest_collection_modifyitems(config, items):
    if connection.vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL: real row locks and concurrent transactions")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _ledger_verified(request):
    """Every test that touches the database ends with the ledger verified."""
    uses = [name for name in ("transactional_db", "db") if name in request.fixturenames]
    if uses:
        request.getfixturevalue(uses[0])  # set up before this fixture, so torn down after its check
    yield
    if uses:
        problems = ledger_problems()
        assert not problems, "ledger_verify failed:\n" + "\n".join(map(str, problems))


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters and the definitions a worker keeps never leak from one test into another."""
    from django.core.cache import cache

    from loyalty.services import gamification

    cache.clear()
    gamification._definitions_read.clear()


@pytest.fixture
def june():
    """The clock stands still on JUNE (API calls use the real clock)."""
    with time_machine.travel(JUNE, tick=False) as traveller:
        yield traveller


@pytest.fixture
def program(db):
    return demo_program_seed(year=2026)


@pytest.fixture
def tiers(program):
    return {tier.code: tier for tier in program.tiers.all()}


@pytest.fixture
def member(program):
    return MemberFactory(
        program=program, external_id="anna", email="anna@example.com", now=datetime(2026, 1, 5, tzinfo=UTC)
    )


@pytest.fixture
def staff(db, django_user_model):
    return django_user_model.objects.create_user("staff", "staff@example.com", "pw", is_staff=True, is_superuser=True)


@pytest.fixture
def member_factory(program):
    def make(**kwargs):
        kwargs.setdefault("now", datetime(2026, 1, 5, tzinfo=UTC))
        return MemberFactory(program=program, **kwargs)

    return make


class CheckedClient(APIClient):
    """An API client that checks every response against the OpenAPI schema."""

    def generic(self, method, path, *args, **kwargs):
        response = super().generic(method, path, *args, **kwargs)
        if path.startswith("/api/v1/") and response.get("Content-Type", "").startswith(
            ("application/json", "application/problem+json")
        ):
            validate_response(method, path.split("?")[0], response.status_code, response.json())
        return response


@pytest.fixture
def api_key(program):
    return api_key_create(program=program, name="checkout")[1]


@pytest.fixture
def api(api_key):
    client = CheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client
