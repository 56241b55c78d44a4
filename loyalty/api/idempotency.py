"""`Idempotency-Key` on POST: a retry with the same key and body replays the first status and body
(with `Idempotent-Replayed: true`) and changes nothing; the same key with another body is 409.

The record and the change commit in one database transaction: a concurrent retry waits on the
key's unique index until the first request commits, then replays it. Services nest inside with a
savepoint, so a refused request (422) still stores its answer while its partial writes roll back.
"""

import functools
import hashlib
import json

from django.db import connection, transaction
from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from loyalty.api.errors import PROBLEM
from loyalty.api.permissions import request_program
from loyalty.errors import IdempotencyKeyReused, InvalidIdempotencyKey, LoyaltyError
from loyalty.models import IdempotencyRecord

REPLAYED = "Idempotent-Replayed"
NOT_STORED = {401, 403, 409, 429}  # answers about this attempt, not about the request


def idempotent(handler):
    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not 0 < len(key) <= 255:
            raise InvalidIdempotencyKey()
        program = request_program(request)
        raw = request._request.body  # read before DRF parses it (it re-reads from the cached bytes)
        fingerprint = hashlib.sha256(
            b"\n".join([request.method.encode(), request.path.encode(), _canonical(raw)])
        ).hexdigest()
        with transaction.atomic():
            record_id = _claim(program.pk, key, fingerprint)
            if record_id is None:
                record = IdempotencyRecord.objects.get(program=program, key=key)
                if record.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was first used with another request")
                return Response(
                    json.loads(record.body) if record.body else None,
                    status=record.status_code,
                    headers={REPLAYED: "true"},
                    content_type=PROBLEM if record.status_code >= 400 else None,
                )
            try:
                with transaction.atomic():
                    response = handler(view, request, *args, **kwargs)
            except (LoyaltyError, APIException) as exc:
                response = view.handle_exception(exc)
            if response.status_code in NOT_STORED:
                transaction.set_rollback(True)
            else:
                # the exact bytes: a jsonb column would reorder the keys of the replay
                first = JSONRenderer().render(response.data).decode() if response.data is not None else ""
                IdempotencyRecord.objects.filter(pk=record_id).update(status_code=response.status_code, body=first)
        return response

    return wrapper


def _canonical(raw: bytes) -> bytes:
    """The same JSON however its keys are ordered or spaced (a retry may rebuild its body);
    anything that is not JSON as it is."""
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return raw


def _claim(program_id: int, key: str, fingerprint: str) -> int | None:
    """Insert the key; -> its id, or None when it exists (after waiting for its transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO loyalty_idempotencyrecord (program_id, "key", fingerprint, body, created_at) '
            "VALUES (%s, %s, %s, '', %s) ON CONFLICT (program_id, \"key\") DO NOTHING RETURNING id",
            [program_id, key, fingerprint, timezone.now()],
        )
        row = cursor.fetchone()
    return row[0] if row else None
