"""Uploads in S3-compatible object storage (moto's server on loopback), read by a worker that
shares no folder with the web process: upload, ingest, reingest, delete, outages, refusals."""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse

from documents import services
from documents.models import Document
from tests import pdf_factory
from tests.integration.conftest import private_worker
from tests.live_server import free_port
from tests.s3_server import S3Server, s3_settings, start_s3_server, stop_s3_server
from tests.waiting import wait_until
from tests.workers import consuming_paused

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto"), free_port())
    yield server
    stop_s3_server(server)


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[S3Server]:
    """This process stores into the bucket; moto's checks are off and the server runs after."""
    with s3_settings(s3_server):
        yield s3_server
    s3_server.resume()
    s3_server.enforce_auth(False)


@pytest.fixture
def second_host(tmp_path: Path) -> dict[str, Path]:
    """The folders of a worker on "another host": an empty media folder and its spool."""
    folders = {"media": tmp_path / "other-host-media", "spool": tmp_path / "other-host-spool"}
    for folder in folders.values():
        folder.mkdir()
    return folders


def upload(client, *paths: Path):
    handles = [path.open("rb") for path in paths]
    try:
        return client.post(reverse("admin:documents_document_upload"), {"files": handles})
    finally:
        for handle in handles:
            handle.close()


def private_queue() -> str:
    """The queue of the test's private worker (every task is routed there meanwhile)."""
    from fca_site.celery import app

    return app.conf.task_routes["*"]["queue"]


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_files_go_to_the_bucket_and_a_worker_with_an_empty_media_folder_ingests_them(
    bucket, second_host, staff_client, corpus, tmp_path, wait_for_documents, settings
):
    # This web process's media folder is its own for the test (other tests' uploads went to the
    # session's): nothing may land in it when the storage is the bucket.
    settings.MEDIA_ROOT = str(tmp_path / "web-media")
    spool = second_host["spool"]
    stale = spool / f"{dead_pid()}-leftover.spool"
    stale.write_bytes(b"from a worker killed mid-task")
    env = bucket.env(DJANGO_MEDIA_ROOT=str(second_host["media"]), RAG_SPOOL_DIR=str(spool))
    with private_worker(tmp_path, concurrency=1, extra_env=env):
        assert not stale.exists(), "a dead process's spool file survived the worker's start"
        first = corpus["text-pdflatex-4pages.pdf"]
        second = corpus["text-latex-two-column-3pages.pdf"]
        assert upload(staff_client, first.path).status_code == 302
        call_command("ingest", str(second.path), stdout=io.StringIO())
        documents = wait_for_documents(list(Document.objects.values_list("pk", flat=True)))
        assert [d.status for d in documents] == [Document.Status.READY] * 2, [
            d.error_message for d in documents
        ]
        for document in documents:
            assert bucket.exists(document.file.name)
        # Neither this process's media folder nor the worker's holds any file.
        assert not any(Path(settings.MEDIA_ROOT).rglob("*.pdf"))
        assert not any(second_host["media"].rglob("*"))

        # The admin streams the file itself: no bucket address, no signed URL on the page.
        document = Document.objects.get(sha256=hashlib.sha256(first.path.read_bytes()).hexdigest())
        page = staff_client.get(reverse("admin:documents_document_change", args=[document.pk]))
        html = page.content.decode()
        assert bucket.endpoint not in html and "X-Amz-Signature" not in html
        file_url = reverse("admin:documents_document_file", args=[document.pk])
        assert file_url in html
        response = staff_client.get(file_url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        stored = b"".join(response.streaming_content)
        assert stored == first.path.read_bytes()

        # Reingest: one set of chunks, read again from the bucket.
        chunk_ids = set(document.chunks.values_list("pk", flat=True))
        services.document_ingest_enqueue(document_ids=[document.pk], force=True)
        wait_until(
            lambda: Document.objects.get(pk=document.pk).ingested_at != document.ingested_at,
            what="the reingest finished",
        )
        document.refresh_from_db()
        assert document.status == Document.Status.READY
        assert document.chunks.count() == document.chunk_count == len(chunk_ids)
        assert not chunk_ids & set(document.chunks.values_list("pk", flat=True))
        assert not list(spool.iterdir()), "a spool file was left behind"

        # Deleting the document (through the admin) deletes its object.
        delete_url = reverse("admin:documents_document_delete", args=[document.pk])
        assert staff_client.post(delete_url, {"post": "yes"}).status_code == 302
        assert not Document.objects.filter(pk=document.pk).exists()
        assert not bucket.exists(document.file.name)
        other = Document.objects.get()
        assert bucket.exists(other.file.name)


def test_a_storage_outage_is_retried_then_transient_and_refusals_are_permanent(
    bucket, second_host, staff_client, tmp_path, wait_for_documents
):
    spool = second_host["spool"]
    env = bucket.env(
        DJANGO_MEDIA_ROOT=str(second_host["media"]),
        RAG_SPOOL_DIR=str(spool),
        RAG_TASK_MAX_RETRIES="2",
        RAG_RETRY_BASE_SECONDS="0.2",
        RAG_RETRY_MAX_SECONDS="0.5",
    )
    files = [tmp_path / f"outage-{n}.pdf" for n in range(4)]
    for n, path in enumerate(files):
        path.write_bytes(pdf_factory.text_pdf(f"Storage outage page {n} of the bucket test."))
    with private_worker(tmp_path, concurrency=1, extra_env=env) as worker:
        # Stored while the server runs; the worker meets the outage when it reads the file.
        with consuming_paused(worker, private_queue()):
            assert upload(staff_client, files[0]).status_code == 302
            survivor = Document.objects.get()
            bucket.pause()
        wait_until(
            lambda: f"ingestion retry document_id={survivor.pk}" in worker.log(),
            what="the worker retried the unreachable storage",
        )
        bucket.resume()
        (survivor,) = wait_for_documents([survivor.pk])
        assert survivor.status == Document.Status.READY, survivor.error_message
        assert survivor.attempts >= 2

        # An outage that outlasts the retries: failed as transient, nothing lost (reingest).
        with consuming_paused(worker, private_queue()):
            upload(staff_client, files[1])
            gone = Document.objects.exclude(pk=survivor.pk).get()
            bucket.pause()
        wait_until(
            lambda: Document.objects.get(pk=gone.pk).status == Document.Status.FAILED,
            what="the document failed after its retries",
        )
        bucket.resume()
        gone.refresh_from_db()
        assert gone.error_code == "transient", gone.error_message
        assert "File storage unavailable" in gone.error_message
        services.document_ingest_enqueue(document_ids=[gone.pk], force=True)
        (gone,) = wait_for_documents([gone.pk])
        assert gone.status == Document.Status.READY

        # Access denied (moto's credential checks on: our key is unknown): permanent.
        upload(staff_client, files[2])
        denied = Document.objects.exclude(pk__in=[survivor.pk, gone.pk]).get()
        wait_for_documents([denied.pk])
        bucket.enforce_auth(True)
        services.document_ingest_enqueue(document_ids=[denied.pk], force=True)
        (denied,) = wait_for_documents([denied.pk])
        bucket.enforce_auth(False)
        assert denied.status == Document.Status.FAILED
        assert denied.error_code == "storage_denied", denied.error_message
        assert "refused to hand over" in denied.error_message

        # The object removed behind our back: missing_file.
        bucket.client().delete_object(Bucket=bucket.bucket, Key=bucket.key(survivor.file.name))
        services.document_ingest_enqueue(document_ids=[survivor.pk], force=True)
        wait_until(
            lambda: Document.objects.get(pk=survivor.pk).status == Document.Status.FAILED,
            what="the missing object failed the document",
        )
        survivor.refresh_from_db()
        assert survivor.error_code == "missing_file"
        assert not list(spool.iterdir()), "a spool file was left behind"


def test_a_misconfigured_bucket_is_refused_by_check_and_at_worker_start(
    bucket, tmp_path, second_host
):
    with s3_settings(bucket, AWS_STORAGE_BUCKET_NAME="no-such-bucket"):
        with pytest.raises(SystemCheckError, match="does not exist: create it"):
            call_command("check")
    closed = f"http://127.0.0.1:{free_port()}"
    with s3_settings(bucket, AWS_S3_ENDPOINT_URL=closed):
        with pytest.raises(SystemCheckError, match="cannot be reached"):
            call_command("check")
    bucket.enforce_auth(True)
    try:
        with pytest.raises(SystemCheckError, match="refuses these credentials"):
            call_command("check")
    finally:
        bucket.enforce_auth(False)
    call_command("check")  # the bucket as configured passes

    env = bucket.env(AWS_STORAGE_BUCKET_NAME="no-such-bucket", RAG_SPOOL_DIR=str(tmp_path))
    with pytest.raises(RuntimeError, match="cannot read stored files: The bucket 'no-such-bucket'"):
        with private_worker(tmp_path, pool="solo", extra_env=env):
            pass
