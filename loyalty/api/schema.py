"""Shared pieces of the OpenAPI description."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


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
    return {status: OpenApiResponse(Problem, description="application/problem+json") for status in statuses}


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="<= 255 chars. A retry with the same key and body replays the first answer.",
)
