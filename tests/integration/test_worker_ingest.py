"""End to end through a real worker: upload, reingest, bad input, and the ingest command."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_celery_results.models import TaskResult

from documents.models import Chunk, Document
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RESULT_KEYS = {"status", "document_id", "pages", "chunks", "seconds", "embedder"}


def upload(client, *paths):
    handles = [path.open("rb") for path in paths]
    try:
        return client.post(reverse("admin:documents_document_upload"), {"files": handles})
    finally:
        for handle in handles:
            handle.close()


def ordinals(document: Document) -> list[int]:
    return list(document.chunks.order_by("ordinal").values_list("ordinal", flat=True))


def test_admin_upload_is_ingested_by_the_worker_with_a_structured_result(
    celery_worker, staff_client, corpus, wait_for_documents
):
    entry = corpus["text-pdflatex-4pages.pdf"]
    response = upload(staff_client, entry.path)
    assert response.status_code == 302, response.content[:500]

    document = Document.objects.get()
    (document,) = wait_for_documents([document.pk])
    assert document.status == Document.Status.READY, document.error_message
    assert document.page_count == entry.page_count
    assert document.chunk_count == Chunk.objects.filter(document=document).count() > 0
    assert ordinals(document) == list(range(document.chunk_count))

    result = TaskResult.objects.get(task_id=document.last_task_id)
    assert result.status == "SUCCESS"
    assert result.task_name == "ingest_pdf_task"
    # django-celery-results stores the arguments as a JSON string of their JSON form.
    assert json.loads(json.loads(result.task_args)) == [document.pk]
    payload = json.loads(result.result)
    assert RESULT_KEYS <= payload.keys()
    assert payload["status"] == "success"
    assert payload["document_id"] == document.pk
    assert payload["pages"] == entry.page_count
    assert payload["chunks"] == document.chunk_count
    assert payload["embedder"] == document.embedder == "hash-384"
    assert {"parse", "embed", "write", "total"} <= payload["seconds"].keys()

    # The document page links to the stored TaskResult and shows chunks with their pages.
    page = staff_client.get(reverse("admin:documents_document_change", args=[document.pk]))
    html = page.content.decode()
    assert reverse("admin:django_celery_results_taskresult_change", args=[result.pk]) in html
    assert "fca-chunks" in html


def test_reingest_action_replaces_chunks_without_duplicates(
    celery_worker, staff_client, corpus, wait_for_documents
):
    upload(staff_client, corpus["text-latex-two-column-3pages.pdf"].path)
    (first,) = wait_for_documents([Document.objects.get().pk])
    assert first.status == Document.Status.READY
    first_ids = set(first.chunks.values_list("pk", flat=True))

    response = staff_client.post(
        reverse("admin:documents_document_changelist"),
        {"action": "reingest", "_selected_action": [first.pk]},
    )
    assert response.status_code == 302
    again = Document.objects.get(pk=first.pk)
    assert again.last_task_id != first.last_task_id
    (again,) = wait_for_documents([again.pk])

    assert again.status == Document.Status.READY
    assert again.chunk_count == first.chunk_count
    assert ordinals(again) == list(range(first.chunk_count))
    assert not first_ids & set(again.chunks.values_list("pk", flat=True)), "old chunks remain"
    assert TaskResult.objects.filter(task_name="ingest_pdf_task", status="SUCCESS").count() == 2

    # The document lists both runs, newest first, and each run links back to the document.
    page = staff_client.get(reverse("admin:documents_document_change", args=[again.pk]))
    html = page.content.decode()
    newest = TaskResult.objects.get(task_id=again.last_task_id)
    oldest = TaskResult.objects.get(task_id=first.last_task_id)
    newest_url = reverse("admin:django_celery_results_taskresult_change", args=[newest.pk])
    oldest_url = reverse("admin:django_celery_results_taskresult_change", args=[oldest.pk])
    assert "fca-runs" in html
    assert html.index(newest_url) < html.index(oldest_url)
    assert f"{again.page_count} pages, {again.chunk_count} chunks" in html
    result_page = staff_client.get(newest_url).content.decode()
    assert reverse("admin:documents_document_change", args=[again.pk]) in result_page


@pytest.mark.parametrize(
    ("filename", "code"),
    [
        ("broken-fuzzed-trailer.pdf", "corrupt"),
        ("encrypted-needs-password-libreoffice.pdf", "encrypted"),
    ],
)
def test_broken_or_encrypted_pdf_fails_with_a_readable_reason_and_no_retry(
    celery_worker, staff_client, corpus, wait_for_documents, filename, code
):
    upload(staff_client, corpus[filename].path)
    (document,) = wait_for_documents([Document.objects.get().pk])

    assert document.status == Document.Status.FAILED
    assert document.error_code == code
    assert len(document.error_message) > 20
    assert document.chunks.count() == 0
    # The worker records the document's failure first, then Celery stores the task's state.
    result = wait_until(
        lambda: TaskResult.objects.filter(
            task_id=document.last_task_id, status__in=["SUCCESS", "FAILURE", "RETRY"]
        ).first(),
        "the task's final state stored",
    )
    assert result.status == "FAILURE"
    assert json.loads(result.result)["exc_message"][0] == document.error_message
    assert "Retry in" not in celery_worker.log().split(document.last_task_id, 1)[-1]


def test_ingest_command_waits_and_reports_json_for_a_folder(
    celery_worker, corpus, wait_for_documents, tmp_path
):
    chosen = [
        "text-pdflatex-4pages.pdf",
        "encrypted-empty-password-dmca-18pages.pdf",
        "cjk-chinese-report-22pages.pdf",
        "encrypted-needs-password-example.pdf",
        "notext-vector-only-2pages.pdf",  # a drawing: OCR finds no text either
    ]
    nested = tmp_path / "nested"
    nested.mkdir()
    for index, name in enumerate(chosen):
        (nested if index % 2 else tmp_path).joinpath(name).symlink_to(corpus[name].path)
    (tmp_path / "notes.txt").write_text("not a pdf, and not named like one")

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="2 of 5"):
        call_command("ingest", str(tmp_path), "--wait", "--json", stdout=out, stderr=err)

    report = {item["path"].rsplit("/", 1)[-1]: item for item in json.loads(out.getvalue())}
    assert set(report) == set(chosen)
    for name in (
        "text-pdflatex-4pages.pdf",
        "encrypted-empty-password-dmca-18pages.pdf",
        "cjk-chinese-report-22pages.pdf",
    ):
        assert report[name]["status"] == "ready", report[name]
        assert report[name]["pages"] == corpus[name].page_count
        assert report[name]["chunks"] > 0
        assert report[name]["error"] == ""
    assert report["encrypted-needs-password-example.pdf"]["status"] == "failed"
    assert report["encrypted-needs-password-example.pdf"]["error"].startswith("encrypted:")
    assert report["notext-vector-only-2pages.pdf"]["status"] == "failed"
    assert report["notext-vector-only-2pages.pdf"]["error"].startswith("no_text:")
    assert not Document.objects.exclude(status__in=["ready", "failed"]).exists()

    # Running it again finds the same documents: ready ones stay as they are (no --force),
    # failed ones are queued again, nothing is duplicated.
    out = io.StringIO()
    call_command("ingest", str(tmp_path), "--json", stdout=out, stderr=io.StringIO())
    again = {item["path"].rsplit("/", 1)[-1]: item for item in json.loads(out.getvalue())}
    assert Document.objects.count() == len(chosen)
    assert again["text-pdflatex-4pages.pdf"]["status"] == "ready"
    assert again["encrypted-needs-password-example.pdf"]["status"] == "queued"
    wait_for_documents([item["document_id"] for item in again.values()])
