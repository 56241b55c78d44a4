"""Fuzzing the API from its own OpenAPI schema (schemathesis): for every operation, generated
requests (valid and not) never get a 5xx, every response matches the schema, and the ledger
verifies afterwards (the autouse check in conftest)."""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from loyalty.models import ALL_SCOPES
from loyalty.services.access import api_key_create

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Like Django's test client: a request must not close the test's database connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def every_scope_key(program):
    """A key with every scope (privacy included), so no operation is fuzzed only as far as a 403."""
    return api_key_create(program=program, name="fuzz", scopes=ALL_SCOPES)[1]


@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation(case, program, member, every_scope_key):
    response = case.call(headers={"Authorization": f"Bearer {every_scope_key}"})
    case.validate_response(response, checks=CHECKS)
