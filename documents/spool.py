"""A worker's private copy of a stored file, for the length of one task.

The object is copied from storage into a private folder (0700) as a file only this user can
read (0600), named after the process that made it. The file is removed when the task ends,
however it ends; a process killed mid-task (hard time limit, SIGKILL, out of memory) cannot
remove its own, so every worker process removes the files of dead processes when it starts.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.storage import Storage

logger = logging.getLogger(__name__)

SUFFIX = ".spool"
COPY_BLOCK = 1024 * 1024


# A write to the spool failing for these reasons is this host's disk, not the stored file.
LOCAL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


class SpoolUnusableError(Exception):
    """The spool folder cannot be created or written: this host's configuration or disk, never
    the stored file nor its storage (so never a storage fault)."""


def spool_dir() -> Path:
    """The private spool folder (created 0700; refused if another user owns it).

    Raises :class:`SpoolUnusableError`, with a sentence, when it cannot be used.
    """
    path = Path(settings.RAG_SPOOL_DIR)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        if info.st_uid != os.getuid():
            raise SpoolUnusableError(
                f"The spool folder {path} (RAG_SPOOL_DIR) belongs to another user."
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            path.chmod(0o700)
    except OSError as exc:
        raise _unusable(path, exc) from exc
    return path


def _unusable(path: Path, exc: OSError) -> SpoolUnusableError:
    return SpoolUnusableError(
        f"The spool folder {path} (RAG_SPOOL_DIR) cannot be used: {exc.strerror or exc}."
    )


def spool_problem() -> str | None:
    """Why the spool folder cannot be used, in a sentence (a file is created and removed to
    find out); None when it can."""
    try:
        directory = spool_dir()
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f"{os.getpid()}-check-"):
            pass
    except SpoolUnusableError as exc:
        return str(exc)
    except OSError as exc:
        return str(_unusable(Path(settings.RAG_SPOOL_DIR), exc))
    return None


def _owner_pid(path: Path) -> int | None:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_stale_spool_files() -> list[Path]:
    """Remove spool files left by processes that no longer run; return what was removed."""
    removed = []
    for path in spool_dir().glob(f"*{SUFFIX}"):
        pid = _owner_pid(path)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # another starting process removed it first
        removed.append(path)
    if removed:
        logger.info(
            "spool: removed %d file(s) of dead processes: %s",
            len(removed),
            " ".join(p.name for p in removed),
        )
    return removed


@contextmanager
def spooled(storage: Storage, name: str) -> Iterator[IO[bytes]]:
    """The stored file ``name`` as a private local file, open for reading from its start.

    Storage errors pass through unchanged (see :func:`documents.storage.storage_fault`); the
    spool folder's own (cannot be created, disk full) are :class:`SpoolUnusableError`. The
    local file is removed whatever happens.
    """
    directory = spool_dir()
    try:
        spool = tempfile.NamedTemporaryFile(
            mode="w+b", dir=directory, prefix=f"{os.getpid()}-", suffix=SUFFIX, delete=True
        )
    except OSError as exc:
        raise _unusable(directory, exc) from exc
    with spool:
        with storage.open(name, "rb") as source:
            try:
                _copy(source, spool)
            except OSError as exc:
                if exc.errno not in LOCAL_DISK_ERRNOS:
                    raise
                raise _unusable(directory, exc) from exc
        spool.flush()
        spool.seek(0)
        logger.info("spool: %s -> %s bytes=%d", name, spool.name, os.fstat(spool.fileno()).st_size)
        yield spool


def _copy(source: IO[bytes], target: IO[bytes]) -> None:
    # django-storages' S3File downloads into a temporary file of its own on first read; its
    # boto3 object can download straight into ours instead (one copy, multipart, retried).
    s3_object = getattr(source, "obj", None)
    if s3_object is not None and hasattr(s3_object, "download_fileobj"):
        s3_object.download_fileobj(target)
        return
    shutil.copyfileobj(source, target, COPY_BLOCK)
