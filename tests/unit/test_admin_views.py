"""The document admin's own pages: progress JSON, one-click reingest, chunks page by page, and a
document's task runs and status panel."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from documents.models import Chunk, Document
from documents.selectors import ingest_task_args

pytestmark = pytest.mark.django_db

Status = Document.Status


def make_document(title: str = "report", **fields) -> Document:
    fields.setdefault("sha256", uuid.uuid4().hex + uuid.uuid4().hex)
    fields.setdefault("size_bytes", 1000)
    return Document.objects.create(title=title, **fields)


def make_chunks(document: Document, count: int, *, pages_per_chunk: int = 1) -> None:
    Chunk.objects.bulk_create(
        Chunk(
            document=document,
            ordinal=i,
            page_start=1 + i // 3,
            page_end=1 + i // 3 + pages_per_chunk - 1,
            text=f"chunk number {i} about topic{i % 5}",
            token_count=7,
            embedder="hash-384",
            embedding=[0.0] * 383 + [1.0],
        )
        for i in range(count)
    )
    Document.objects.filter(pk=document.pk).update(chunk_count=count)


def progress(client, *ids, expect: int = 200) -> dict:
    response = client.get(
        reverse("admin:documents_document_progress"), {"ids": ",".join(map(str, ids))}
    )
    assert response.status_code == expect, response.content[:300]
    return response.json()


# --- progress endpoint --------------------------------------------------------------------


def test_progress_reports_pages_done_of_total_while_processing(staff_client):
    document = make_document(
        status=Status.PROCESSING,
        page_count=40,
        pages_done=12,
        processing_started_at=timezone.now(),
    )
    (payload,) = progress(staff_client, document.pk)["documents"]
    assert payload["status"] == "processing"
    assert payload["active"] is True
    assert (payload["pages_done"], payload["page_count"], payload["percent"]) == (12, 40, 30)
    assert payload["stuck"] is False
    # The same rendering the list shows: a progress bar at 12 of 40 for the live script.
    assert 'max="40" value="12"' in payload["html"]["cell"]
    assert "12 / 40 pages" in payload["html"]["panel"]
    assert 'data-fca-status="processing"' in payload["html"]["cell"]


def test_progress_before_the_pdf_is_opened_has_no_total(staff_client):
    document = make_document(status=Status.PROCESSING, processing_started_at=timezone.now())
    (payload,) = progress(staff_client, document.pk)["documents"]
    assert payload["page_count"] is None and payload["percent"] is None
    assert "opening the PDF" in payload["html"]["cell"]


def test_progress_of_a_failed_document_gives_code_message_and_reingest_button(staff_client):
    document = make_document(
        status=Status.FAILED, error_code="corrupt", error_message="The PDF cannot be read."
    )
    data = progress(staff_client, document.pk)
    (payload,) = data["documents"]
    assert data["active"] == 0
    assert (payload["error_code"], payload["error_message"]) == (
        "corrupt",
        "The PDF cannot be read.",
    )
    reingest_url = reverse("admin:documents_document_reingest", args=[document.pk])
    for variant in ("cell", "panel"):
        assert "corrupt" in payload["html"][variant]
        assert "The PDF cannot be read." in payload["html"][variant]
        assert f'formaction="{reingest_url}"' in payload["html"][variant]


def test_progress_of_a_ready_document_is_complete(staff_client):
    document = make_document(status=Status.READY, page_count=4, pages_done=4, chunk_count=17)
    (payload,) = progress(staff_client, document.pk)["documents"]
    assert (payload["percent"], payload["chunk_count"], payload["active"]) == (100, 17, False)


def test_progress_flags_a_stuck_document(staff_client, settings):
    settings.RAG_STUCK_AFTER_SECONDS = 60
    # Queued five minutes ago; its previous run started days ago, which must not count.
    document = make_document(
        status=Status.QUEUED,
        last_task_id="lost",
        processing_started_at=timezone.now() - timedelta(days=3),
    )
    Document.objects.filter(pk=document.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    (payload,) = progress(staff_client, document.pk)["documents"]
    assert payload["stuck"] is True
    assert "stuck: queued for 5\xa0minutes" in payload["html"]["cell"]
    assert "fca-reingest" in payload["html"]["cell"]


def test_progress_leaves_out_unknown_ids_and_rejects_garbage(staff_client):
    document = make_document()
    assert [d["id"] for d in progress(staff_client, document.pk, 999999)["documents"]] == [
        document.pk
    ]
    assert "error" in progress(staff_client, "1", "x", expect=400)


def test_progress_is_for_staff_only(client, django_user_model):
    document = make_document()
    url = reverse("admin:documents_document_progress") + f"?ids={document.pk}"
    assert client.get(url).status_code == 302  # to the login page
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    client.force_login(viewer)
    assert client.get(url).status_code == 403


def test_progress_without_change_permission_offers_no_reingest(client, django_user_model):
    from django.contrib.auth.models import Permission

    document = make_document(status=Status.FAILED, error_code="corrupt", error_message="Bad.")
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_document"))
    client.force_login(viewer)
    (payload,) = progress(client, document.pk)["documents"]
    assert "Bad." in payload["html"]["cell"]
    assert "fca-reingest" not in payload["html"]["cell"]


# --- pages that carry live elements ---------------------------------------------------------


def test_changelist_marks_active_documents_for_live_updates(staff_client):
    document = make_document(
        status=Status.PROCESSING, page_count=10, pages_done=3, processing_started_at=timezone.now()
    )
    html = staff_client.get(reverse("admin:documents_document_changelist")).content.decode()
    assert f'data-fca-doc="{document.pk}" data-fca-status="processing"' in html
    assert "3 / 10 pages" in html
    assert 'data-progress-url="' + reverse("admin:documents_document_progress") in html


def test_document_page_shows_a_failure_plainly_with_one_click_reingest(staff_client):
    document = make_document(
        status=Status.FAILED, error_code="encrypted", error_message="The PDF needs a password."
    )
    html = staff_client.get(
        reverse("admin:documents_document_change", args=[document.pk])
    ).content.decode()
    panel = html[html.index('id="fca-status-panel"') :]
    assert "Ingestion failed" in panel
    assert "encrypted" in panel and "The PDF needs a password." in panel
    assert reverse("admin:documents_document_reingest", args=[document.pk]) in panel


# --- one-click reingest, requeue stuck -------------------------------------------------------


def test_one_click_reingest_queues_the_document_and_returns_to_the_page(
    staff_client, django_capture_on_commit_callbacks
):
    document = make_document(status=Status.FAILED, error_code="corrupt", error_message="Bad.")
    changelist = reverse("admin:documents_document_changelist")
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            reverse("admin:documents_document_reingest", args=[document.pk]),
            HTTP_REFERER=f"http://testserver{changelist}",
        )
    assert response.status_code == 302
    assert response["Location"] == f"http://testserver{changelist}"
    document.refresh_from_db()
    assert document.status == Status.QUEUED and document.last_task_id
    assert len(callbacks) == 1


def test_reingest_never_redirects_off_site_and_needs_post(staff_client):
    document = make_document(status=Status.READY)
    url = reverse("admin:documents_document_reingest", args=[document.pk])
    assert staff_client.get(url).status_code == 405
    response = staff_client.post(url, HTTP_REFERER="https://evil.example/")
    assert response["Location"] == reverse("admin:documents_document_change", args=[document.pk])


def test_reingest_of_a_running_document_is_left_alone_and_said_so(staff_client):
    document = make_document(
        status=Status.PROCESSING, processing_started_at=timezone.now(), last_task_id="t1"
    )
    response = staff_client.post(
        reverse("admin:documents_document_reingest", args=[document.pk]), follow=True
    )
    assert "left alone" in response.content.decode()
    document.refresh_from_db()
    assert document.last_task_id == "t1"


def test_requeue_stuck_sends_only_the_stuck_documents(
    staff_client, settings, django_capture_on_commit_callbacks
):
    settings.RAG_STUCK_AFTER_SECONDS = 60
    stuck = make_document("stuck", status=Status.QUEUED, last_task_id="lost")
    fresh = make_document("fresh", status=Status.QUEUED, last_task_id="coming")
    Document.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(reverse("admin:documents_document_requeue_stuck"))
    assert response.status_code == 302
    assert len(callbacks) == 1
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.last_task_id != "lost" and fresh.last_task_id == "coming"


# --- chunks, page by page -------------------------------------------------------------------


def chunk_ordinals(html: str) -> list[int]:
    import re

    return [int(n) for n in re.findall(r'<tr class="fca-chunk" id="chunk-(\d+)">', html)]


def test_chunks_page_paginates_in_order_with_pages(staff_client):
    document = make_document(status=Status.READY, page_count=20)
    make_chunks(document, 60)
    url = reverse("admin:documents_document_chunks", args=[document.pk])
    first = staff_client.get(url).content.decode()
    assert chunk_ordinals(first) == list(range(25))
    assert "Chunks 1–25 of 60" in first and "page 1 of 3" in first
    assert "p. 1" in first
    last = staff_client.get(url, {"page": 3}).content.decode()
    assert chunk_ordinals(last) == list(range(50, 60))
    small = staff_client.get(url, {"page": 2, "per_page": 10}).content.decode()
    assert chunk_ordinals(small) == list(range(10, 20))
    assert "per_page=10" in small  # page links keep the page size
    # Out of range or garbage page numbers land on a real page, never an error.
    assert chunk_ordinals(staff_client.get(url, {"page": 99}).content.decode())[0] == 50
    assert chunk_ordinals(staff_client.get(url, {"page": "x"}).content.decode())[0] == 0


def test_chunks_page_narrows_to_a_pdf_page_or_words(staff_client):
    document = make_document(status=Status.READY)
    make_chunks(document, 12, pages_per_chunk=2)
    url = reverse("admin:documents_document_chunks", args=[document.pk])
    # Chunks 0-2 span pages 1-2, 3-5 span 2-3: page 2 is in both groups.
    on_page_two = staff_client.get(url, {"pdf_page": 2}).content.decode()
    assert chunk_ordinals(on_page_two) == [0, 1, 2, 3, 4, 5]
    assert "pp. 1–2" in on_page_two
    topic = staff_client.get(url, {"q": "topic3"}).content.decode()
    assert chunk_ordinals(topic) == [3, 8]
    assert "<mark>topic3</mark>" in topic


def test_chunks_page_of_an_unknown_document_is_404(staff_client):
    url = reverse("admin:documents_document_chunks", args=[987654])
    assert staff_client.get(url).status_code == 404


# --- task runs on a document's page, and back -----------------------------------------------


def make_run(document: Document, *, status: str, result: dict, minutes_ago: int, **fields):
    run = TaskResult.objects.create(
        task_id=str(uuid.uuid4()),
        task_name="ingest_pdf_task",
        task_args=ingest_task_args(document.pk),
        status=status,
        result=json.dumps(result),
        content_type="application/json",
        content_encoding="utf-8",
        **fields,
    )
    created = timezone.now() - timedelta(minutes=minutes_ago)
    TaskResult.objects.filter(pk=run.pk).update(
        date_created=created,
        date_started=created + timedelta(seconds=1),
        date_done=created + timedelta(seconds=4.5),
    )
    return run


def test_document_page_lists_task_runs_newest_first_with_duration_worker_and_outcome(
    staff_client,
):
    document = make_document(status=Status.READY, page_count=4, chunk_count=17)
    old = make_run(
        document,
        status="FAILURE",
        result={"exc_type": "TransientIngestError", "exc_message": ["database went away"]},
        minutes_ago=30,
        worker="w1@host",
        traceback="Traceback (most recent call last): ...",
    )
    new = make_run(
        document,
        status="SUCCESS",
        result={"status": "success", "pages": 4, "chunks": 17, "seconds": {"total": 3.2}},
        minutes_ago=5,
        worker="w2@host",
    )
    html = staff_client.get(
        reverse("admin:documents_document_change", args=[document.pk])
    ).content.decode()
    runs = html[html.index('class="fca-runs"') :]
    new_url = reverse("admin:django_celery_results_taskresult_change", args=[new.pk])
    old_url = reverse("admin:django_celery_results_taskresult_change", args=[old.pk])
    assert runs.index(new_url) < runs.index(old_url)
    assert "3.5 s" in runs  # started 1 s after creation, done at 4.5 s
    assert "w2@host" in runs and "w1@host" in runs
    assert "4 pages, 17 chunks in 3.2 s" in runs
    assert "TransientIngestError: database went away" in runs
    assert "traceback" in runs
    assert "&quot;chunks&quot;: 17" in runs  # the structured result, one click away


def test_task_result_page_links_back_to_its_document(staff_client):
    document = make_document("annual report", status=Status.READY)
    run = make_run(
        document, status="SUCCESS", result={"status": "success", "pages": 1}, minutes_ago=1
    )
    html = staff_client.get(
        reverse("admin:django_celery_results_taskresult_change", args=[run.pk])
    ).content.decode()
    assert reverse("admin:documents_document_change", args=[document.pk]) in html
    assert "annual report" in html
