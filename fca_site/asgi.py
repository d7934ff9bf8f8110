"""ASGI entry point.

Wrapped in the request-body limit: Django's ASGI handler reads a whole body before any
middleware runs, so the limit must sit outside it (see fca_site.request_limits).
"""

import os

from django.core.asgi import get_asgi_application

from fca_site.request_limits import RequestBodyLimitASGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fca_site.settings")

application = RequestBodyLimitASGI(get_asgi_application())
