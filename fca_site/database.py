"""Turn ``DATABASE_URL`` (or the embedded server) into Django's ``DATABASES["default"]``."""

from __future__ import annotations

import os
from typing import Any

import dj_database_url

from fca_site import embedded_db


def default_database() -> dict[str, Any]:
    """The ``default`` database: ``DATABASE_URL`` if set, else the embedded PostgreSQL."""
    url = os.environ.get("DATABASE_URL") or embedded_db.ensure_running()
    config = dj_database_url.parse(
        url,
        # Workers hold a connection for their lifetime; health checks replace a dead one
        # (database restart) instead of failing the next task.
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
    options = config.setdefault("OPTIONS", {})
    # libpq accepts a socket directory as ``?host=``; Django and SQLAlchemy both read HOST.
    if not config.get("HOST") and "host" in options:
        config["HOST"] = options.pop("host")
    return config
