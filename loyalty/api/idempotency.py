"""`Idempotency-Key` on POST: a retry with the same key and body replays the first status and body
(with `Idempotent-Replayed: true`) and changes nothing; the same key with another body is 409.

The record is written last, in the same database transaction as the change it describes, so the two
commit together: a retry that comes after the first commit finds the record and replays it; one
that runs alongside the first waits on the key's unique index when it writes the record, finds the
first request's there and rolls its own work back, then replays the first answer. A refused request
(422) rolls back whatever it wrote and stores its answer in a transaction of its own.

Nothing here takes a savepoint, and a refused request is rolled back whole, so the services inside
need none either (`rolled_back_whole`): on a balance change the work runs under the member's row
lock, and every statement there lengthens the wait of that member's other requests.
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
from loyalty.services.locks import rolled_back_whole

REPLAYED = "Idempotent-Replayed"
NOT_STORED = {401, 403, 409, 429}  # answers about this attempt, not about the request


def idempotent(handler):
    """Run a POST handler in one transaction, rolled back whole if it fails, replaying the first
    answer to a retry that carries the same `Idempotency-Key`."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            with transaction.atomic(), rolled_back_whole():
                return handler(view, request, *args, **kwargs)
        if not 0 < len(key) <= 255:
            raise InvalidIdempotencyKey()
        program = request_program(request)
        raw = request._request.body  # read before DRF parses it (it re-reads from the cached bytes)
        fingerprint = hashlib.sha256(
            b"\n".join([request.method.encode(), request.path.encode(), _canonical(raw)])
        ).hexdigest()
        record = IdempotencyRecord.objects.filter(program=program, key=key).first()
        if record is not None:
            return _replay(record, key, fingerprint)
        stored = None
        with transaction.atomic(), rolled_back_whole():
            try:
                response = handler(view, request, *args, **kwargs)
                refused = False
            except (LoyaltyError, APIException) as exc:
                response, refused = view.handle_exception(exc), True
            if refused or response.status_code in NOT_STORED:
                transaction.set_rollback(True)  # nothing the refused attempt wrote stays
            else:
                stored = _store(program.pk, key, fingerprint, response)
                if not stored:  # a concurrent attempt with this key committed first: its answer stands
                    transaction.set_rollback(True)
        if response.status_code in NOT_STORED:  # (a conflict may be with a first attempt that has committed since)
            record = IdempotencyRecord.objects.filter(program=program, key=key).first()
            return response if record is None else _replay(record, key, fingerprint)
        if refused:
            with transaction.atomic():
                stored = _store(program.pk, key, fingerprint, response)
        if stored is False:
            return _replay(IdempotencyRecord.objects.get(program=program, key=key), key, fingerprint)
        return response

    return wrapper


def _replay(record: IdempotencyRecord, key: str, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"Idempotency-Key {key!r} was first used with another request")
    return Response(
        json.loads(record.body) if record.body else None,
        status=record.status_code,
        headers={REPLAYED: "true"},
        content_type=PROBLEM if record.status_code >= 400 else None,
    )


def _store(program_id: int, key: str, fingerprint: str, response: Response) -> bool:
    """Write the answer under its key; -> False when the key is taken (after waiting for the
    transaction that took it). Plain SQL: under a member's lock the ORM's compilation counts."""
    # the exact bytes: a jsonb column would reorder the keys of the replay
    body = JSONRenderer().render(response.data).decode() if response.data is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(
            'INSERT INTO loyalty_idempotencyrecord (program_id, "key", fingerprint, status_code, body, created_at) '
            'VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (program_id, "key") DO NOTHING RETURNING id',
            [program_id, key, fingerprint, response.status_code, body, timezone.now()],
        )
        return cursor.fetchone() is not None


def _canonical(raw: bytes) -> bytes:
    """The same JSON however its keys are ordered or spaced (a retry may rebuild its body);
    anything that is not JSON as it is."""
    try:
        return json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return raw
