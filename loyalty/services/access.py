"""API keys: created with the secret shown once, revoked, never edited. Both are audited."""

from django.db import transaction
from django.utils import timezone

from loyalty.models import DEFAULT_SCOPES, ApiKey, Program
from loyalty.services.audit import audit_record


@transaction.atomic
def api_key_create(*, program: Program, name: str, scopes: list[str] | None = None, actor=None) -> tuple[ApiKey, str]:
    """-> (key, raw secret). Only the hash is stored: show the raw secret to the caller once."""
    raw, prefix, hashed = ApiKey.generate()
    key = ApiKey.objects.create(
        program=program,
        name=name,
        prefix=prefix,
        hashed=hashed,
        scopes=list(scopes if scopes is not None else DEFAULT_SCOPES),
    )
    audit_record(actor=actor, action="apikey.create", obj=key, program=program, after={"scopes": key.scopes})
    return key, raw


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor=None) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="apikey.revoke",
            obj=key,
            program=key.program,
            before={"active": True},
            after={"active": False},
        )
    return key
