"""Turn ``DATABASE_URL`` (or the embedded server) into Django's ``DATABASES["default"]``, and a
connection's settings back into a URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dj_database_url
from sqlalchemy.engine import URL

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


def database_url(settings_dict: Mapping[str, Any], *, driver: str = "postgresql") -> str:
    """The URL of the database a Django connection's settings describe: the inverse of
    :func:`default_database` (``driver="postgresql+psycopg"`` for SQLAlchemy's async engine).

    A socket directory as HOST goes in the query (``?host=``), as libpq expects.
    """
    host = settings_dict.get("HOST") or None
    query = {}
    if host and host.startswith("/"):
        query["host"] = host
        host = None
    url = URL.create(
        driver,
        username=settings_dict.get("USER") or None,
        password=settings_dict.get("PASSWORD") or None,
        host=host,
        port=int(settings_dict["PORT"]) if settings_dict.get("PORT") else None,
        database=settings_dict.get("NAME"),
        query=query,
    )
    return url.render_as_string(hide_password=False)
