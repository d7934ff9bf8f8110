"""Where uploaded PDFs are stored, and what a storage failure means.

Names come from the content hash, never from the user. Storage faults are sorted like database
faults: an outage is transient (retried), a missing object is the file's absence, a refusal is
permanent; the bucket itself is checked before a worker starts and by ``manage.py check``.
"""

from __future__ import annotations

import errno
import logging
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage, default_storage

logger = logging.getLogger(__name__)

# Transient S3 answers: server errors and throttling (botocore already retried them a few times).
TRANSIENT_S3_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "InternalError",
    }
)
MISSING_S3_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# OSErrors of a local (or mounted) folder that pass: a network file system that went away.
TRANSIENT_ERRNOS = frozenset(
    {errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.ENOSPC, errno.EHOSTDOWN}
)


def document_upload_path(instance: Any, filename: str) -> str:
    """``documents/ab/abcdef....pdf``: safe (no user input) and stable for the same bytes."""
    digest = instance.sha256
    return f"documents/{digest[:2]}/{digest}.pdf"


class StorageFault(StrEnum):
    """What a storage error means for an ingestion."""

    MISSING = "missing"  # the object is not there: permanent (missing_file)
    DENIED = "denied"  # the storage refuses us: permanent (storage_denied)
    TRANSIENT = "transient"  # unreachable, 5xx, throttled: retry


def storage_fault(exc: BaseException) -> StorageFault | None:
    """Classify an error raised by the storage backend; None when it is not a storage error."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, FileNotFoundError):
        return StorageFault.MISSING
    if isinstance(exc, PermissionError):
        return StorageFault.DENIED
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in TRANSIENT_S3_CODES or status >= 500 or status == 429:
            return StorageFault.TRANSIENT
        if code in MISSING_S3_CODES or status == 404:
            return StorageFault.MISSING
        return StorageFault.DENIED
    if isinstance(exc, NoCredentialsError):
        return StorageFault.DENIED
    if isinstance(exc, BotoCoreError):
        # Connection refused or reset, timeouts, a body cut short: the network, not the file.
        return StorageFault.TRANSIENT
    if isinstance(exc, OSError):
        return StorageFault.TRANSIENT if exc.errno in TRANSIENT_ERRNOS else None
    return None


def storage_errors() -> tuple[type[BaseException], ...]:
    """The exception types a storage backend raises (for :func:`storage_fault` to classify)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (OSError, BotoCoreError, ClientError)


def storage_location() -> str:
    """Where files are stored, in words (for errors and logs)."""
    if settings.DJANGO_STORAGE == "s3":
        prefix = f"/{settings.AWS_LOCATION}" if settings.AWS_LOCATION else ""
        endpoint = settings.AWS_S3_ENDPOINT_URL or "AWS S3"
        return f"bucket {settings.AWS_STORAGE_BUCKET_NAME!r}{prefix} at {endpoint}"
    return f"folder {settings.MEDIA_ROOT} (DJANGO_MEDIA_ROOT)"


def storage_problem(storage: Storage | None = None) -> str | None:
    """Why the configured storage cannot be used, in a sentence; None when it can.

    Local storage needs nothing ahead of time (the folder is created on the first upload). S3
    storage needs a bucket name, credentials it accepts and an endpoint that answers: one
    ``HeadBucket`` request finds out.
    """
    if settings.DJANGO_STORAGE != "s3":
        return None
    if not settings.AWS_STORAGE_BUCKET_NAME:
        return "DJANGO_STORAGE=s3 but AWS_STORAGE_BUCKET_NAME is not set: name the bucket."
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    storage = storage or default_storage
    where = storage_location()
    try:
        storage.connection.meta.client.head_bucket(Bucket=settings.AWS_STORAGE_BUCKET_NAME)
    except NoCredentialsError:
        return f"No credentials for the {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    except ClientError as exc:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status == 404:
            return f"The {where} does not exist: create it, or fix AWS_STORAGE_BUCKET_NAME."
        if status in (401, 403):
            return (
                f"The {where} refuses these credentials (HTTP {status}): check "
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket's policy."
            )
        return f"The {where} answered HTTP {status} to a check of the bucket: {exc}"
    except BotoCoreError as exc:
        return (
            f"The {where} cannot be reached: {exc}. Check AWS_S3_ENDPOINT_URL (unset means AWS "
            "itself) and that this host can reach it."
        )
    return None
