"""The spool folder's own faults are said as such, never as the file storage's, and a worker
refuses to start without a usable one."""

from __future__ import annotations

import errno
import io
import os

import pytest

from documents import intake, services, spool, worker_signals
from documents.ingestion import TransientIngestError
from documents.models import Document

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%spooled\n" + b"0" * 100


@pytest.fixture
def foreign_spool(settings, tmp_path):
    """A spool folder that belongs to another user."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    os.chown(folder, os.getuid() + 4242, -1)
    settings.RAG_SPOOL_DIR = folder
    return folder


def ingest_new_document() -> Document:
    document = intake.document_create(file=io.BytesIO(PDF), name="a.pdf", size=len(PDF)).document
    with pytest.raises(TransientIngestError) as raised:
        services.document_ingest(document_id=document.pk, task_id=None)
    document.refresh_from_db()
    document.raised = str(raised.value)
    return document


def test_a_spool_folder_of_another_user_is_not_a_storage_refusal(foreign_spool):
    document = ingest_new_document()
    # Retried as this host's fault, not failed as storage_denied for a file that is fine.
    assert (document.status, document.error_code) == (Document.Status.PROCESSING, "")
    assert document.raised == (
        f"The spool folder {foreign_spool} (RAG_SPOOL_DIR) belongs to another user."
    )


def test_a_full_disk_under_the_spool_is_not_a_storage_outage(settings, tmp_path, monkeypatch):
    settings.RAG_SPOOL_DIR = tmp_path / "spool"

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "_copy", disk_full)
    document = ingest_new_document()
    assert document.raised == (
        f"The spool folder {tmp_path / 'spool'} (RAG_SPOOL_DIR) cannot be used: "
        "No space left on device."
    )
    assert not list((tmp_path / "spool").iterdir()), "the spool file was left behind"


def test_a_worker_refuses_to_start_without_a_usable_spool_folder(foreign_spool, settings):
    with pytest.raises(SystemExit, match="belongs to another user"):
        worker_signals.refuse_unusable_spool()
    blocked = foreign_spool.parent / "a-file"
    blocked.write_bytes(b"")
    settings.RAG_SPOOL_DIR = blocked / "spool"
    assert spool.spool_problem() == (
        f"The spool folder {blocked / 'spool'} (RAG_SPOOL_DIR) cannot be used: Not a directory."
    )


def test_a_usable_spool_folder_lets_the_worker_start(settings, tmp_path):
    settings.RAG_SPOOL_DIR = tmp_path / "spool"
    worker_signals.refuse_unusable_spool()
    assert spool.spool_problem() is None
    assert list((tmp_path / "spool").iterdir()) == []
