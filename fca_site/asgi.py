"""ASGI entry point.

``/api/`` goes to the API's own handler (fca_site.api_handler: its short middleware chain),
everything else to Django's. Both are wrapped in the request-body limit: Django's ASGI handler
reads a whole body before any middleware runs, so the limit must sit outside it (see
fca_site.request_limits).
"""

import os

from django.core.asgi import get_asgi_application

from fca_site.request_limits import ASGIApp, Receive, RequestBodyLimitASGI, Scope, Send

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fca_site.settings")
# No persistent connections under ASGI: each request's synchronous code runs on a thread of its
# own, so a kept connection would stay open with its dead thread until "too many clients".
# https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")

API_PATH_PREFIX = "/api/"

site_application = get_asgi_application()  # sets Django up: the API's handler needs it first

from fca_site.api_handler import ApiASGIHandler  # noqa: E402

api_application = ApiASGIHandler()


async def route(scope: Scope, receive: Receive, send: Send) -> None:
    """``/api/`` to the API's handler, the rest to the site's."""
    app: ASGIApp = site_application
    if scope["type"] == "http":
        # Django reads the path below the prefix the site is mounted at (root_path).
        path, root_path = scope["path"], scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        if path.startswith(API_PATH_PREFIX):
            app = api_application
    await app(scope, receive, send)


application = RequestBodyLimitASGI(route)
