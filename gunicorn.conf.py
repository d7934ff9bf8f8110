"""gunicorn settings of the web process (docker-compose.yml and the Dockerfile start gunicorn
with ``-c gunicorn.conf.py``). https://gunicorn.org/reference/settings/

What each layer bounds:
- gunicorn bounds the request line and the headers (below); it has no setting for the body.
- The body is bounded by the application before it is read: fca_site.request_limits answers
  413 to a Content-Length over RAG_MAX_REQUEST_BYTES (WSGI middleware; ASGI wrapper for
  fca_site.asgi, which also counts a chunked body and stops at the limit).
- The sync worker closes the connection after every response, so the unread rest of a refused
  body is never read.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or "3")

# gunicorn's own defaults, stated so they are seen: a longer request line gets 414, more or
# larger header fields get 431 (the admin's URLs and cookies stay far below these).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# No runtime control socket (gunicorn's gunicornc tool): nothing uses it, and two servers on one
# host would share its default path.
control_socket_disable = True
