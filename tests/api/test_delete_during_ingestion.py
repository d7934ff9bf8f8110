"""DELETE while a real worker is writing the document's chunks: the request does not wait for
the ingestion, everything of the document is gone, and the task ends quietly (no retry, no
failure, no traceback)."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_celery_results.models import TaskResult
from fpdf import FPDF

from documents.ingestion import DOCUMENT_LOCK_NAMESPACE
from documents.models import Chunk, Document
from tests.api.conftest import bearer, run_async
from tests.integration.conftest import private_worker
from tests.openai_server import EmbeddingsServer
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PAGES = 12


def many_pages_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for page in range(PAGES):
        pdf.add_page()
        pdf.multi_cell(0, 6, f"Page {page}: lighthouse keepers log the weather every hour. " * 12)
    return bytes(pdf.output())


def replacement_in_progress(document_id: int) -> bool:
    """rag holds its per-document transaction lock: the chunks are being written."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = %s AND objsubid = 2 AND granted",
            [DOCUMENT_LOCK_NAMESPACE, document_id],
        )
        return cursor.fetchone()[0] > 0


def test_delete_ends_a_running_ingestion_quietly(tmp_path, make_key):
    key = make_key()
    # Slow embeddings (one chunk per call, 0.3 s each) keep the replacement open for seconds.
    with EmbeddingsServer(delay=0.3) as embeddings:
        env = {
            "RAG_EMBEDDER": "openai",
            "RAG_OPENAI_BASE_URL": embeddings.base_url,
            "RAG_EMBED_BATCH_SIZE": "1",
        }
        with private_worker(tmp_path, concurrency=1, extra_env=env) as worker:
            created = {}

            async def upload(client):
                response = await client.post(
                    "/api/v1/documents",
                    {"file": SimpleUploadedFile("log.pdf", many_pages_pdf())},
                    headers=bearer(key),
                )
                assert response.status_code == 201, response.content
                created.update(response.json())

            run_async(upload)
            document_id = created["id"]
            wait_until(lambda: replacement_in_progress(document_id), timeout=120, what="writing")
            task_id = Document.objects.get(pk=document_id).last_task_id

            async def delete(client):
                started = time.monotonic()
                response = await client.delete(
                    f"/api/v1/documents/{document_id}", headers=bearer(key)
                )
                assert response.status_code == 204
                assert time.monotonic() - started < 10, "the delete waited for the ingestion"

            run_async(delete)
            assert not Document.objects.filter(pk=document_id).exists()
            assert not Chunk.objects.filter(document_id=document_id).exists()
            record = wait_until(
                lambda: (
                    TaskResult.objects.filter(task_id=task_id, status="SUCCESS").first()
                    or TaskResult.objects.filter(task_id=task_id, status="FAILURE").first()
                ),
                timeout=60,
                what="the task's end",
            )
            log = worker.log()
    assert record.status == "SUCCESS", record.result
    assert '"reason": "deleted"' in record.result
    assert not Chunk.objects.filter(document_id=document_id).exists()
    assert "Traceback" not in log and "retry" not in log.lower()
