import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# gunicorn's gthread workers run many threads in one process: a thread back from the database waits
# for the GIL up to the switch interval (5 ms by default) while the others run Python, and a
# member's row lock is held across a dozen such returns. PYTHON_SWITCH_INTERVAL (seconds) shortens it.
if os.environ.get("PYTHON_SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["PYTHON_SWITCH_INTERVAL"]))

application = get_wsgi_application()
