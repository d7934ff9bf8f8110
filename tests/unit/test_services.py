"""Document services: enqueueing, status transitions, ingestion guards (creation: test_intake)."""

from __future__ import annotations

import io

import pytest

from documents import intake, services
from documents.models import Document

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n%fake but headed like a PDF\n" + b"0" * 100


def create(data: bytes = PDF, name: str = "Report_2024.pdf"):
    return intake.document_create(file=io.BytesIO(data), name=name, size=len(data))


def test_enqueue_sends_on_commit_and_records_the_task(django_capture_on_commit_callbacks):
    document = create().document
    with django_capture_on_commit_callbacks() as callbacks:
        queued = services.document_ingest_enqueue(document_ids=[document.pk])
    document.refresh_from_db()
    assert list(queued) == [document.pk]
    assert document.last_task_id == queued[document.pk]
    assert document.status == Document.Status.QUEUED
    assert len(callbacks) == 1


def test_enqueue_leaves_queued_and_ready_documents_alone_unless_forced(
    django_capture_on_commit_callbacks,
):
    document = create().document
    with django_capture_on_commit_callbacks():
        services.document_ingest_enqueue(document_ids=[document.pk])
        # Already queued with a task: not queued twice.
        assert services.document_ingest_enqueue(document_ids=[document.pk]) == {}
        Document.objects.filter(pk=document.pk).update(status=Document.Status.READY)
        assert services.document_ingest_enqueue(document_ids=[document.pk], force=False) == {}
        assert list(services.document_ingest_enqueue(document_ids=[document.pk], force=True)) == [
            document.pk
        ]


def test_failure_is_recorded_only_from_an_active_state():
    document = create().document
    assert services.document_mark_failed(document_id=document.pk, code="corrupt", message="bad")
    document.refresh_from_db()
    assert (document.status, document.error_code, document.error_message) == (
        Document.Status.FAILED,
        "corrupt",
        "bad",
    )
    # A late duplicate report cannot overwrite a finished state.
    assert not services.document_mark_failed(document_id=document.pk, code="x", message="y")


def test_a_superseded_task_does_nothing():
    document = create().document
    Document.objects.filter(pk=document.pk).update(last_task_id="newer")
    result = services.document_ingest(document_id=document.pk, task_id="older")
    assert result == {
        "status": "skipped",
        "document_id": document.pk,
        "reason": "superseded by task newer",
    }
    document.refresh_from_db()
    assert (document.status, document.attempts, document.last_task_id) == ("queued", 0, "newer")


def test_a_redelivered_message_of_a_finished_ingestion_does_nothing():
    document = create().document
    Document.objects.filter(pk=document.pk).update(status=Document.Status.READY, last_task_id="t")
    result = services.document_ingest(document_id=document.pk, task_id="t")
    assert (result["status"], result["reason"]) == ("skipped", "already finished (ready)")


def test_a_document_that_keeps_killing_its_worker_is_failed_as_crashed(settings):
    from documents.ingestion import PermanentIngestError

    document = create().document
    Document.objects.filter(pk=document.pk).update(attempts=settings.RAG_MAX_ATTEMPTS)
    with pytest.raises(PermanentIngestError, match="without finishing"):
        services.document_ingest(document_id=document.pk, task_id=None)
    document.refresh_from_db()
    assert (document.status, document.error_code) == (Document.Status.FAILED, "crashed")
    assert document.attempts == settings.RAG_MAX_ATTEMPTS  # the refusing start is not one


def test_stuck_documents_are_requeued_and_fresh_ones_are_not(django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    stuck = create().document
    fresh = create(PDF + b"other").document
    old = timezone.now() - timedelta(hours=2)
    Document.objects.filter(pk=stuck.pk).update(
        status=Document.Status.PROCESSING, processing_started_at=old, last_task_id="lost"
    )
    Document.objects.filter(pk=fresh.pk).update(last_task_id="on its way")
    with django_capture_on_commit_callbacks() as callbacks:
        report = services.document_requeue_stuck(older_than=timedelta(hours=1))
    assert [(f.document_id, f.reason) for f in report.found] == [
        (stuck.pk, "processing, no heartbeat for 120 min")
    ]
    assert len(callbacks) == 1
    stuck.refresh_from_db()
    task_id = report.found[0].task_id
    assert (stuck.status, stuck.last_task_id, stuck.attempts) == ("queued", task_id, 0)


def test_a_processing_document_with_a_recent_heartbeat_is_never_requeued(
    django_capture_on_commit_callbacks, settings
):
    from datetime import timedelta

    from django.utils import timezone

    settings.RAG_HEARTBEAT_STALE_SECONDS = 60
    running = create().document
    started = timezone.now() - timedelta(hours=2)
    Document.objects.filter(pk=running.pk).update(
        status=Document.Status.PROCESSING,
        processing_started_at=started,
        heartbeat_at=timezone.now() - timedelta(seconds=5),
        last_task_id="running",
    )
    with django_capture_on_commit_callbacks() as callbacks:
        report = services.document_requeue_stuck(older_than=timedelta(0))
        # The admin's reingest of a "stuck" document goes by the same rule.
        assert (
            services.document_ingest_enqueue(document_ids=[running.pk], stuck_after=timedelta(0))
            == {}
        )
    assert (report.found, report.processing, callbacks) == ([], 1, [])
    running.refresh_from_db()
    assert (running.status, running.last_task_id) == ("processing", "running")


def test_a_requeue_never_overtakes_a_heartbeat_written_after_the_search(
    django_capture_on_commit_callbacks, settings
):
    from datetime import timedelta

    from django.utils import timezone

    from documents import selectors

    settings.RAG_HEARTBEAT_STALE_SECONDS = 60
    document = create().document
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.PROCESSING,
        heartbeat_at=timezone.now() - timedelta(minutes=10),
        last_task_id="slow",
    )
    report = selectors.find_stuck()
    assert [f.document_id for f in report.found] == [document.pk]
    # The run beats between the search and the requeue: the requeue's condition sees it.
    Document.objects.filter(pk=document.pk).update(heartbeat_at=timezone.now())
    with django_capture_on_commit_callbacks() as callbacks:
        assert services._requeue(document.pk, when=report.found[0].still_stuck) is None
    assert callbacks == []


def test_the_admin_stuck_filter_lists_only_stuck_documents(staff_client):
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    stuck = create(name="stuck one.pdf").document
    create(PDF + b"2", name="fresh one.pdf")
    Document.objects.filter(pk=stuck.pk).update(
        updated_at=timezone.now() - timedelta(days=1), last_task_id="lost"
    )
    html = staff_client.get(reverse("admin:documents_document_changelist") + "?stuck=yes")
    content = html.content.decode()
    assert "stuck one" in content and "fresh one" not in content


@pytest.mark.django_db(transaction=True)
def test_a_file_missing_from_storage_fails_the_document_with_its_own_code(settings):
    from documents.ingestion import PermanentIngestError

    document = create().document
    document.file.storage.delete(document.file.name)
    with pytest.raises(PermanentIngestError, match="missing from storage"):
        services.document_ingest(document_id=document.pk, task_id=None)
    document.refresh_from_db()
    assert (document.status, document.error_code) == (Document.Status.FAILED, "missing_file")


def test_retry_delays_grow_exponentially_and_never_come_straight_back(settings):
    from documents.tasks import retry_delay

    settings.RAG_RETRY_BASE_SECONDS, settings.RAG_RETRY_MAX_SECONDS = 5, 300
    settings.RAG_HEARTBEAT_STALE_SECONDS = 600
    for retries, step in [(0, 5), (1, 10), (3, 40), (10, 300)]:
        delays = [retry_delay(retries) for _ in range(200)]
        assert step / 2 <= min(delays) and max(delays) <= step


def test_a_stuck_requeue_keeps_the_count_of_starts_and_a_reingest_resets_it(
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    stuck = create().document
    finished = create(PDF + b"finished").document
    silent = timezone.now() - timedelta(hours=2)
    Document.objects.filter(pk=stuck.pk).update(
        status=Document.Status.PROCESSING,
        processing_started_at=silent,
        heartbeat_at=silent,
        last_task_id="waiting for its retry",
        attempts=4,
    )
    Document.objects.filter(pk=finished.pk).update(status=Document.Status.READY, attempts=4)
    with django_capture_on_commit_callbacks():
        report = services.document_requeue_stuck(older_than=timedelta(hours=1))
        services.document_ingest_enqueue(document_ids=[finished.pk], force=True)
    assert [found.document_id for found in report.requeued] == [stuck.pk]
    stuck.refresh_from_db()
    finished.refresh_from_db()
    # The sweep's requeue does not restart the count, so a document that keeps killing its
    # worker still reaches RAG_MAX_ATTEMPTS; a person's reingest of a finished one starts over.
    assert (stuck.status, stuck.attempts) == ("queued", 4)
    assert (finished.status, finished.attempts) == ("queued", 0)


def test_a_retry_comes_back_before_the_sweep_would_requeue_its_document(settings):
    from documents.tasks import retry_delay

    settings.RAG_RETRY_BASE_SECONDS, settings.RAG_RETRY_MAX_SECONDS = 5, 300
    settings.RAG_HEARTBEAT_STALE_SECONDS = 180
    delays = [retry_delay(retries) for retries in range(12) for _ in range(50)]
    assert max(delays) <= 90


def test_a_stale_heartbeat_threshold_near_the_heartbeat_period_is_refused(settings):
    from documents.checks import heartbeat_threshold_errors

    assert heartbeat_threshold_errors() == []
    settings.RAG_HEARTBEAT_STALE_SECONDS = 30
    errors = heartbeat_threshold_errors()
    assert [error.id for error in errors] == ["documents.E007"]
    assert "every 20 s, so it must be at least 60 s" in errors[0].msg


def test_a_deleted_documents_file_stays_when_the_same_bytes_come_back_before_the_commit(
    django_capture_on_commit_callbacks,
):
    from django.db import transaction

    document = create().document
    name = document.file.name
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            assert services.document_delete(document_id=document.pk)
            again = create().document  # reuses the stored file, still there until the commit
    assert (again.pk != document.pk, again.file.name) == (True, name)
    assert again.file.storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        services.document_delete(document_id=again.pk)
    assert not again.file.storage.exists(name)


def test_a_failure_found_after_a_requeue_names_the_run_that_failed(monkeypatch):
    from documents import ingestion
    from documents.ingestion import PermanentIngestError

    document = create().document
    Document.objects.filter(pk=document.pk).update(last_task_id="run")

    def requeued_then_corrupt(running: Document):
        # A requeue while this run holds the lock gives the document a newer task.
        Document.objects.filter(pk=running.pk).update(
            status=Document.Status.QUEUED, last_task_id="newer"
        )
        raise PermanentIngestError("The PDF is corrupt.")

    monkeypatch.setattr(ingestion, "ingest_document", requeued_then_corrupt)
    with pytest.raises(PermanentIngestError):
        services.document_ingest(document_id=document.pk, task_id="run")
    document.refresh_from_db()
    assert (document.status, document.last_task_id) == (Document.Status.FAILED, "run")


@pytest.mark.django_db(transaction=True)
def test_a_second_delete_waits_for_the_first_and_finds_the_document_gone():
    import threading

    from django.db import DatabaseError, connection, connections
    from django.db.models.signals import post_delete

    from tests.waiting import wait_until

    document = create().document
    first_deleted_the_row, finish_first = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def hold_the_first_open(sender, instance, **kwargs):
        # The first deletion, past its locks and its DELETE, not yet committed.
        if threading.current_thread().name == "first":
            first_deleted_the_row.set()
            finish_first.wait(30)

    def delete(name: str) -> None:
        try:
            results[name] = services.document_delete(document_id=document.pk)
        except DatabaseError as exc:  # a session ended under it: shown by the assertion below
            results[name] = exc
        finally:
            connections.close_all()

    def second_is_waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = %s AND objid = %s",
                [services.DELETE_LOCK_NAMESPACE, document.pk],
            )
            return cursor.fetchone()[0] > 0 or "second" in results

    post_delete.connect(hold_the_first_open, sender=Document, dispatch_uid="test-hold-first")
    try:
        first = threading.Thread(target=delete, args=("first",), name="first")
        first.start()
        assert first_deleted_the_row.wait(30)
        second = threading.Thread(target=delete, args=("second",), name="second")
        second.start()
        wait_until(second_is_waiting, "the second delete waits or ends", timeout=30)
        finish_first.set()
        first.join(30)
        second.join(30)
    finally:
        finish_first.set()
        post_delete.disconnect(sender=Document, dispatch_uid="test-hold-first")
    assert results == {"first": True, "second": False}
    assert not Document.objects.filter(pk=document.pk).exists()
