"""Run a callable from many real threads at once (each with its own database connection)."""

import threading
from collections.abc import Callable

from django.db import connection


def race(fn: Callable[[int], object], n: int) -> list:
    """Call fn(i) for i in range(n) from n threads released together; -> results (or exceptions)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results
