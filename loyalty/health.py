"""GET /healthz: is this process able to serve? Checks the database and the broker."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def healthz(request):
    checks, ok = {}, True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"], ok = f"error: {type(exc).__name__}", False
    if settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = "in-process (eager)"
    else:
        try:
            from config.celery import app

            # a connection from the producer pool (not a new TCP connection per probe), really asked:
            # Redis answers a PING on it, other transports prove it by connecting
            with app.pool.acquire(block=True, timeout=2) as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                client = getattr(conn.default_channel, "client", None)
                if client is not None:
                    client.ping()
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"], ok = f"error: {type(exc).__name__}", False
    return JsonResponse({"status": "ok" if ok else "unavailable", **checks}, status=200 if ok else 503)
