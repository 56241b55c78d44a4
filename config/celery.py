"""The Celery app. Periodic jobs come from one registry (loyalty.jobs) so beat and
`manage.py run_periodic_jobs` run exactly the same functions."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("loyalty")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _schedule_periodic_jobs(sender, **kwargs):
    from loyalty.jobs import beat_schedule

    sender.conf.beat_schedule = beat_schedule()
