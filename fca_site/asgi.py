"""ASGI entry point.

Wrapped in the request-body limit: Django's ASGI handler reads a whole body before any
middleware runs, so the limit must sit outside it (see fca_site.request_limits).
"""

import os

from django.core.asgi import get_asgi_application

from fca_site.request_limits import RequestBodyLimitASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fca_site.settings")
# No persistent connections under ASGI: each request's synchronous code runs on a thread of its
# own, so a kept connection would stay open with its dead thread until "too many clients".
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")

application = RequestBodyLimitASGI(get_asgi_application())
