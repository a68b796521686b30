"""WSGI entry point (gunicorn everhash.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "everhash.settings")
application = get_wsgi_application()
