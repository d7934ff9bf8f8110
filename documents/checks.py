"""System checks: the database must offer pgvector, and the file storage must be usable, before
anything is migrated, uploaded or ingested."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Tags, register
from django.db import DatabaseError, connections


@register(Tags.database)
def pgvector_available(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    """Fail early, and clearly, when DATABASE_URL points at a PostgreSQL without pgvector."""
    errors: list[Error] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            errors.append(
                Error(
                    f"Database {alias!r} is {connection.vendor}; this project needs PostgreSQL "
                    "with the pgvector extension.",
                    id="documents.E001",
                )
            )
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
                available = cursor.fetchone() is not None
        except DatabaseError as exc:
            errors.append(Error(f"Cannot query database {alias!r}: {exc}", id="documents.E002"))
            continue
        if not available:
            host = connection.settings_dict.get("HOST") or "localhost"
            errors.append(
                Error(
                    f"The PostgreSQL server of database {alias!r} ({host}) does not have the "
                    "pgvector extension installed.",
                    hint="Install pgvector on that server (for example the pgvector/pgvector "
                    "Docker image or your distribution's postgresql-NN-pgvector package), or "
                    "unset DATABASE_URL to use the embedded PostgreSQL, which includes it.",
                    id="documents.E003",
                )
            )
    return errors


@register(Tags.database)
def embedder_fits_vector_column(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list:
    """Refuse an embedder whose vectors do not fit the database column, before any work."""
    if not databases or "default" not in databases:
        return []
    return embedder_mismatch_errors()


def embedder_mismatch_errors() -> list[Error]:
    """Errors if the configured embedder's dimension differs from documents_chunk.embedding."""
    from documents import ingestion

    try:
        problem = ingestion.embedder_mismatch()
    except DatabaseError:
        return []  # reported by pgvector_available; nothing to compare against yet
    return [Error(problem, id="documents.E004")] if problem else []


@register("storage")
def storage_usable(app_configs: Any = None, **kwargs: Any) -> list:
    """Refuse a storage that cannot be used (S3: no bucket name, missing bucket, credentials
    refused, endpoint unreachable), saying what is wrong."""
    from documents.storage import storage_problem

    problem = storage_problem()
    return [Error(problem, id="documents.E005")] if problem else []


@register()
def ocr_mode_valid(app_configs: Any = None, **kwargs: Any) -> list:
    """Refuse a RAG_OCR that is not a mode, in every process (search builds the same
    configuration); the languages are a worker's concern, checked when one starts."""
    from documents import ingestion

    problem = ingestion.ocr_mode_problem()
    return [Error(problem, id="documents.E006")] if problem else []


# RAG_HEARTBEAT_STALE_SECONDS must leave a running ingestion this many missed heartbeats (a slow
# database write, a paused worker) before it counts as dead and is requeued under a new task.
HEARTBEATS_BEFORE_STALE = 3


@register()
def heartbeat_threshold_sane(app_configs: Any = None, **kwargs: Any) -> list:
    """Refuse a stale-heartbeat threshold that a healthy ingestion could cross."""
    return heartbeat_threshold_errors()


def heartbeat_threshold_errors() -> list[Error]:
    """Errors if RAG_HEARTBEAT_STALE_SECONDS is too close to the ingestion's heartbeat period
    (the system check and the worker's start-up check)."""
    from django.conf import settings

    from documents.ingestion import HEARTBEAT_EVERY_SECONDS

    least = HEARTBEAT_EVERY_SECONDS * HEARTBEATS_BEFORE_STALE
    if settings.RAG_HEARTBEAT_STALE_SECONDS >= least:
        return []
    return [
        Error(
            f"RAG_HEARTBEAT_STALE_SECONDS is {settings.RAG_HEARTBEAT_STALE_SECONDS} s; an "
            f"ingestion writes its heartbeat every {HEARTBEAT_EVERY_SECONDS:g} s, so it must be "
            f"at least {least:g} s, or running ingestions would be requeued as stuck.",
            id="documents.E007",
        )
    ]
