"""Every error the API returns is application/problem+json (RFC 9457): type, title, status,
detail, a stable `code`, and for validation `errors: [{"field": "lines[0].unit_price", ...}]`."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

from loyalty.errors import LoyaltyError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"

_DRF = [
    (exceptions.ParseError, "malformed_json", "The body is not valid JSON"),
    (exceptions.AuthenticationFailed, "invalid_api_key", "Authentication failed"),
    (exceptions.NotAuthenticated, "unauthenticated", "Authentication needed"),
    (exceptions.PermissionDenied, "missing_scope", "Not allowed"),
    (exceptions.NotFound, "not_found", "Not found"),
    (exceptions.MethodNotAllowed, "method_not_allowed", "Method not allowed"),
    (exceptions.NotAcceptable, "not_acceptable", "Not acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type", "Send JSON (Content-Type: application/json)"),
    (exceptions.Throttled, "rate_limited", "Too many requests"),
]


def problem(status: int, code: str, title: str, detail: str = "", **extra) -> dict:
    return {
        "type": f"urn:loyalty:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
        **extra,
    }


def problem_response(status: int, code: str, title: str, detail: str = "", headers=None, **extra) -> Response:
    return Response(problem(status, code, title, detail, **extra), status=status, content_type=PROBLEM, headers=headers)


def flatten_errors(detail, path: str = "") -> list[dict]:
    """DRF's nested error detail -> [{"field": "lines[0].unit_price", "message": ..., "code": ...}]."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if isinstance(key, int):  # a list serializer's errors, by item index
                out += flatten_errors(value, f"{path}[{key}]")
                continue
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            out += flatten_errors(value, f"{path}.{name}" if path and name else (name or path))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [{"field": path, "message": str(item), "code": getattr(item, "code", "invalid")} for item in detail]
        out = []
        for i, item in enumerate(detail):
            if item:
                out += flatten_errors(item, f"{path}[{i}]")
        return out
    return [{"field": path, "message": str(detail), "code": getattr(detail, "code", "invalid")}]


def problem_exception_handler(exc, context):
    if isinstance(exc, LoyaltyError):
        return problem_response(exc.status, exc.code, exc.title, exc.message, **exc.extra)
    if isinstance(exc, RequestDataTooBig):
        return problem_response(
            413,
            "body_too_large",
            "The request body is too large",
            f"At most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes",
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in fields[:5])
        return problem_response(400, "validation_error", "The request is not valid", detail, errors=fields)
    for cls, code, title in _DRF:
        if isinstance(exc, cls):
            headers = {}
            if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
                headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
            if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
                headers["WWW-Authenticate"] = "Bearer"
                code = (
                    getattr(exc.detail, "code", None)
                    if getattr(exc.detail, "code", None) in ("invalid_api_key", "revoked_api_key")
                    else code
                )
            return problem_response(exc.status_code, code, title, str(exc.detail), headers=headers)
    if isinstance(exc, exceptions.APIException):
        return problem_response(exc.status_code, "error", "Error", str(exc.detail))
    log.exception("Unhandled error in the API", exc_info=exc)
    return problem_response(
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on our side; nothing was changed. Retry with the same Idempotency-Key.",
    )


def api_not_found(request, exception=None):
    """404 for unknown paths: problem+json under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            problem(404, "not_found", "Not found", f"No endpoint at {request.path}"), status=404, content_type=PROBLEM
        )
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
