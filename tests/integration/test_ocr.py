"""OCR on a real worker: a scan made here is uploaded, read by Tesseract in the page reader,
and found by a search for a word printed on it; bad images end with a code and a sentence
while the worker goes on; a worker without the configured OCR language refuses to start."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django_celery_results.models import TaskResult

from devtools.scans import scanned_text_pdf
from documents import ingestion, intake, services
from documents.models import Chunk, Document
from rag.ocr import installed_languages, tessdata_dir
from tests import pdf_factory
from tests.conftest import TEST_QUEUE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "eng" not in installed_languages(tessdata_dir("")),
        reason="Tesseract's English model is not installed (tesseract-ocr-eng)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
LINES = [
    "Quarterly report of the Marrowbridge cooperative",
    "The orchard yielded 4471 crates of quince this season.",
    "Signed by the treasurer, Ottoline Vasquez-Brandt.",
]


def add_document(data: bytes, name: str) -> int:
    outcome = intake.document_create(file=io.BytesIO(data), name=name, size=len(data))
    services.document_ingest_enqueue(document_ids=[outcome.document.pk])
    return outcome.document.pk


def test_a_scanned_pdf_is_ocrd_on_a_worker_and_found_by_a_printed_word(
    celery_worker, wait_for_documents
):
    document_id = add_document(scanned_text_pdf(LINES), "scan.pdf")
    (document,) = wait_for_documents([document_id], timeout=300)

    assert document.status == Document.Status.READY, document.error_message
    assert document.page_sources == {"ocr": 1}
    assert document.page_readers == {"ocr": "1"}
    chunks = list(Chunk.objects.filter(document=document))
    assert chunks and all(chunk.ocr for chunk in chunks)
    assert all(60 < chunk.ocr_confidence <= 100 for chunk in chunks)
    result = json.loads(TaskResult.objects.get(task_id=document.last_task_id).result)
    assert result["page_sources"] == {"ocr": 1}
    assert result["page_readers"] == {"ocr": "1"}
    assert result["seconds"]["ocr"] > 0

    hits = ingestion.search("Marrowbridge quince", k=3, mode="text")
    assert hits and hits[0]["document_id"] == document_id
    assert hits[0]["ocr"] is True and hits[0]["ocr_confidence"] > 60


def test_bad_images_fail_with_a_code_and_the_worker_goes_on(celery_worker, wait_for_documents):
    bad = {
        "corrupt-image.pdf": pdf_factory.corrupt_image_pdf(),
        "two-pixels.pdf": pdf_factory.two_pixel_image_pdf(),
        "enormous-page.pdf": pdf_factory.enormous_page_pdf(),
    }
    ids = {name: add_document(data, name) for name, data in bad.items()}
    after = add_document(pdf_factory.text_pdf("The worker still reads afterwards."), "after.pdf")
    documents = {d.pk: d for d in wait_for_documents([*ids.values(), after], timeout=300)}

    for name, document_id in ids.items():
        document = documents[document_id]
        assert document.status == Document.Status.FAILED, name
        assert document.error_code == "no_text", (name, document.error_message)
    enormous = documents[ids["enormous-page.pdf"]].error_message
    assert "OCR skipped page 1: it measures 200 x 200 in" in enormous
    assert "RAG_OCR_MAX_PIXELS" in enormous
    assert documents[after].status == Document.Status.READY
    log = celery_worker.log()
    assert "WorkerLostError" not in log and "exited with" not in log


def test_a_worker_without_the_configured_ocr_language_refuses_to_start():
    from django.db import connection

    from fca_site.database import database_url

    env = {
        **os.environ,
        "CELERY_QUEUE": TEST_QUEUE,
        "RAG_EMBEDDER": "hash",
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "RAG_OCR_LANGUAGES": "eng+xyz",
    }
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "fca_site", "worker", "--pool", "solo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "OCR language(s) xyz (RAG_OCR_LANGUAGES=eng+xyz) not installed" in (
        result.stdout + result.stderr
    )
