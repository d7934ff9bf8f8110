"""Admin: staff only; the upload takes several PDFs and says per file what became of it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from documents.models import Document

pytestmark = pytest.mark.django_db


def pdf(name: str, body: bytes = b"") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"%PDF-1.7\n" + body + name.encode(), "application/pdf")


@pytest.mark.parametrize(
    "url_name", ["admin:documents_document_changelist", "admin:documents_document_upload"]
)
def test_anonymous_and_non_staff_users_are_sent_to_login(client, django_user_model, url_name):
    url = reverse(url_name)
    assert client.get(url).status_code == 302
    user = django_user_model.objects.create_user("plain", password="pw-plain-1")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_upload_creates_and_queues_several_documents(
    staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            reverse("admin:documents_document_upload"), {"files": [pdf("a.pdf"), pdf("b.pdf")]}
        )
    assert response.status_code == 302
    assert sorted(Document.objects.values_list("title", flat=True)) == ["a", "b"]
    assert all(d.last_task_id for d in Document.objects.all())
    assert len(callbacks) == 2


def outcome_rows(response) -> dict[str, str]:
    """The upload outcome table: file name -> the row's HTML."""
    import re

    html = response.content.decode()
    rows = re.findall(
        r'<tr class="fca-outcome[^"]*" data-fca-file="([^"]+)">(.*?)</tr>', html, re.S
    )
    return {name: row for name, row in rows}


def test_uploading_present_bytes_is_reported_with_a_link_not_duplicated(
    staff_client, django_capture_on_commit_callbacks
):
    url = reverse("admin:documents_document_upload")
    with django_capture_on_commit_callbacks():
        staff_client.post(url, {"files": [pdf("a.pdf")]})
        response = staff_client.post(url, {"files": [pdf("a.pdf")]}, follow=True)
    assert Document.objects.count() == 1
    document = Document.objects.get()
    row = outcome_rows(response)["a.pdf"]
    # Still queued from the first upload: its ingestion is on its way, nothing is sent again.
    assert "Already in progress" in row
    assert reverse("admin:documents_document_change", args=[document.pk]) in row


def test_a_non_pdf_is_rejected_with_its_reason_and_the_good_file_still_queued(
    staff_client, settings, django_capture_on_commit_callbacks
):
    fake = SimpleUploadedFile("evil.pdf", b"MZ\x90\x00 an executable", "application/pdf")
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            reverse("admin:documents_document_upload"),
            {"files": [pdf("good.pdf"), fake]},
            follow=True,
        )
    assert response.status_code == 200
    rows = outcome_rows(response)
    assert "Rejected" in rows["evil.pdf"]
    assert "The file is not a PDF" in rows["evil.pdf"]
    assert "Queued" in rows["good.pdf"]
    assert list(Document.objects.values_list("title", flat=True)) == ["good"]
    assert len(callbacks) == 1
    # Nothing of the rejected file was written: one stored PDF, the good one.
    assert len(list(settings.MEDIA_ROOT.rglob("*.pdf"))) == 1


def test_an_oversized_file_is_rejected_with_the_limit(staff_client, settings):
    settings.RAG_MAX_UPLOAD_BYTES = 100
    response = staff_client.post(
        reverse("admin:documents_document_upload"),
        {"files": [pdf("big.pdf", b"x" * 500)]},
        follow=True,
    )
    assert "the limit is" in outcome_rows(response)["big.pdf"]
    assert Document.objects.count() == 0


def test_an_empty_file_is_rejected_as_empty(staff_client):
    empty = SimpleUploadedFile("empty.pdf", b"", "application/pdf")
    response = staff_client.post(
        reverse("admin:documents_document_upload"), {"files": [empty]}, follow=True
    )
    assert "The file is empty" in outcome_rows(response)["empty.pdf"]
    assert Document.objects.count() == 0


def test_an_upload_without_files_is_a_form_error(staff_client):
    response = staff_client.post(reverse("admin:documents_document_upload"), {})
    assert response.status_code == 200
    assert "Nothing was uploaded" in response.content.decode()


def test_changelist_shows_status_and_the_upload_link(
    staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        staff_client.post(reverse("admin:documents_document_upload"), {"files": [pdf("a.pdf")]})
    html = staff_client.get(reverse("admin:documents_document_changelist")).content.decode()
    assert "fca-status-queued" in html
    assert reverse("admin:documents_document_upload") in html


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_keeps_the_upload_and_says_what_happens(staff_client, monkeypatch):
    from kombu.exceptions import OperationalError

    from fca_site.celery import app

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to localhost:6379. Connection refused.")

    staff_client.post(reverse("admin:documents_document_upload"), {"files": [pdf("f.pdf")]})
    Document.objects.update(status=Document.Status.FAILED, error_code="corrupt")
    # Every task message goes through the app's send_task, however the task is named.
    monkeypatch.setattr(app, "send_task", broker_down)
    # Outside a test transaction, as in a real request: the messages are sent at commit.
    response = staff_client.post(
        reverse("admin:documents_document_upload"),
        {"files": [pdf("a.pdf"), pdf("f.pdf")]},
        follow=True,
    )
    assert response.status_code == 200
    assert "cannot be reached" in response.content.decode()
    rows = outcome_rows(response)
    assert "Queued" in rows["a.pdf"] and "Queued again" in rows["f.pdf"]
    # Both stored and QUEUED (the failed one too), for the stuck-document sweep to send.
    assert set(Document.objects.values_list("status", flat=True)) == {Document.Status.QUEUED}
    assert Document.objects.count() == 2


def test_stale_filter_lists_documents_embedded_by_another_model(staff_client, settings):
    settings.RAG_EMBEDDER = "hash"
    old = Document.objects.create(
        title="old model", sha256="a" * 64, size_bytes=1, status="ready", embedder="other-model"
    )
    Document.objects.create(
        title="current model", sha256="b" * 64, size_bytes=1, status="ready", embedder="hash-384"
    )
    html = staff_client.get(
        reverse("admin:documents_document_changelist") + "?stale=yes"
    ).content.decode()
    assert old.title in html and "current model" not in html


def test_the_same_bytes_twice_in_one_upload_are_one_document(
    staff_client, django_capture_on_commit_callbacks
):
    body = b"%PDF-1.7\nsame bytes"
    files = [
        SimpleUploadedFile("first.pdf", body, "application/pdf"),
        SimpleUploadedFile("copy.pdf", body, "application/pdf"),
    ]
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(
            reverse("admin:documents_document_upload"), {"files": files}, follow=True
        )
    rows = outcome_rows(response)
    assert "Queued" in rows["first.pdf"] and "Same file twice" in rows["copy.pdf"]
    assert Document.objects.count() == 1 and len(callbacks) == 1


def test_the_upload_outcome_survives_a_reload_and_stays_in_its_session(
    staff_client, django_user_model, django_capture_on_commit_callbacks
):
    from django.test import Client

    with django_capture_on_commit_callbacks():
        response = staff_client.post(
            reverse("admin:documents_document_upload"), {"files": [pdf("a.pdf")]}
        )
    outcome_url = response["Location"]
    assert "a.pdf" in outcome_rows(staff_client.get(outcome_url))
    other = Client()
    other.force_login(
        django_user_model.objects.create_superuser("other", "o@example.com", "pw-other-1")
    )
    assert outcome_rows(other.get(outcome_url)) == {}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("way", ["change page", "delete_selected action"])
def test_the_admins_delete_ends_a_running_ingestion_instead_of_waiting_for_it(staff_client, way):
    import io

    import psycopg
    from django.db import connection

    from documents import intake
    from documents.ingestion import DOCUMENT_LOCK_NAMESPACE

    data = b"%PDF-1.7\nbeing ingested"
    document = intake.document_create(file=io.BytesIO(data), name="a.pdf", size=len(data)).document
    # What an ingestion writing the document's chunks holds, in a session of its own: rag's
    # per-document transaction lock, and the row lock its uncommitted chunks take.
    params = connection.get_connection_params()
    ingesting = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    ingesting.execute(
        "SELECT pg_advisory_xact_lock(%s, %s)", [DOCUMENT_LOCK_NAMESPACE, document.pk]
    )
    ingesting.execute(
        f"SELECT 1 FROM {Document._meta.db_table} WHERE id = %s FOR KEY SHARE", [document.pk]
    )
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")  # the old, waiting delete fails, not hangs
    try:
        if way == "change page":
            url = reverse("admin:documents_document_delete", args=[document.pk])
            response = staff_client.post(url, {"post": "yes"})
        else:
            response = staff_client.post(
                reverse("admin:documents_document_changelist"),
                {"action": "delete_selected", "_selected_action": [document.pk], "post": "yes"},
            )
        assert response.status_code == 302
        assert not Document.objects.filter(pk=document.pk).exists()
        with pytest.raises(psycopg.OperationalError):
            ingesting.execute("SELECT 1")  # its session was ended, its changes rolled back
    finally:
        ingesting.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
