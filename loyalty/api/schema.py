"""Shared pieces of the OpenAPI description."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

PROBLEM_MEDIA = "application/problem+json"


class ProblemFieldError(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField(required=False)


class Problem(serializers.Serializer):
    """application/problem+json (RFC 9457)."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. insufficient_points")
    errors = ProblemFieldError(many=True, required=False)


def problems(*statuses: int) -> dict:
    return {(status, PROBLEM_MEDIA): OpenApiResponse(Problem, description="A problem") for status in statuses}


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="<= 255 chars. A retry with the same key and body replays the first answer.",
)

COMMON = {
    "400": "Invalid input (e.g. a NUL character in the URL)",
    "401": "No API key, or an unknown or revoked one",
    "403": "The API key lacks the endpoint's scope",
    "429": "Rate limited (see Retry-After)",
    "500": "Internal error; nothing was changed",
}
WRITES = {
    "400": "Invalid input (errors lists each field)",
    "409": "Conflict (e.g. Idempotency-Key reused with another body)",
    "413": "Body too large",
    "415": "Not JSON",
}


def add_common_problems(result, generator, request, public):
    """Post-processing hook: every operation can answer the generic problems."""
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in item.items():
            extra = dict(COMMON) | (WRITES if method in ("post", "patch", "put") else {})
            if any(p.get("name") in ("cursor", "page_size") for p in operation.get("parameters", [])):
                extra["400"] = "Invalid query parameters (e.g. a bad cursor)"
            for status, description in extra.items():
                operation["responses"].setdefault(
                    status, {"description": description, "content": {PROBLEM_MEDIA: {"schema": ref}}}
                )
    return result
