"""`Authorization: Bearer <api key>`: the key names the program, so requests never do."""

import hmac

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from loyalty.models import KEY_PREFIX, ApiKey, hash_secret


class ApiKeyClient:
    """The authenticated party of an API-key request (request.user); request.auth is the ApiKey."""

    is_authenticated = True
    is_staff = False
    is_active = True

    def __init__(self, key: ApiKey):
        self.key = key
        self.pk = None

    def __str__(self):
        return f"api key {self.key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        raw = raw.strip()
        parts = raw.split("_")
        if not raw.startswith(KEY_PREFIX) or len(parts) < 3:
            raise exceptions.AuthenticationFailed("Malformed API key", code="invalid_api_key")
        key = ApiKey.objects.select_related("program").filter(prefix=parts[1]).first()
        if key is None or not hmac.compare_digest(key.hashed, hash_secret(raw)):
            raise exceptions.AuthenticationFailed("Unknown API key", code="invalid_api_key")
        if not key.is_active:
            raise exceptions.AuthenticationFailed("This API key was revoked", code="revoked_api_key")
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)  # at most once a minute
        return ApiKeyClient(key), key

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "loyalty.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer lk_...`"}
