"""The intake: one rule for every file, the same through the admin upload and ``manage.py ingest``.

Each outcome is checked through both doors (the ``take_in`` fixture runs every test twice), with
the messages counted at commit: the unit tests' database transaction never commits, so a message
that would be sent shows up as one captured callback.
"""

from __future__ import annotations

import html
import io
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from documents import intake, selectors
from documents.models import Document

pytestmark = pytest.mark.django_db

Status = Document.Status


def pdf(tag: str) -> bytes:
    """Bytes the intake accepts as a PDF (a header is all it checks), distinct per ``tag``."""
    return b"%PDF-1.7\n" + tag.encode()


@dataclass(frozen=True)
class Seen:
    """What a door reported for one file."""

    verdict: str
    document_id: int | None
    reason: str


def via_admin(client, files: list[tuple[str, bytes]], *, force: bool = False) -> dict[str, Seen]:
    """Upload through the admin page as staff and read the outcome table."""
    data: dict = {"files": [SimpleUploadedFile(n, b, "application/pdf") for n, b in files]}
    if force:
        data["force"] = "on"
    response = client.post(reverse("admin:documents_document_upload"), data, follow=True)
    assert response.status_code == 200
    rows = re.findall(
        r'<tr class="fca-outcome fca-outcome-(\w+)" data-fca-file="([^"]+)">(.*?)</tr>',
        response.content.decode(),
        re.S,
    )
    seen = {}
    for verdict, name, row in rows:
        link = re.search(r"/document/(\d+)/change/", row)
        reason = re.search(r'<div class="fca-reason">(.*?)</div>', row, re.S)
        seen[html.unescape(name)] = Seen(
            verdict,
            int(link.group(1)) if link else None,
            html.unescape(reason.group(1)) if reason else "",
        )
    return seen


def via_command(
    folder: Path, files: list[tuple[str, bytes]], *, force: bool = False
) -> dict[str, Seen]:
    """Write the files to a folder and run ``manage.py ingest --json`` on them."""
    folder.mkdir(exist_ok=True)
    paths = []
    for name, data in files:
        (folder / name).write_bytes(data)
        paths.append(str(folder / name))
    out = io.StringIO()
    try:
        call_command(
            "ingest",
            *paths,
            "--json",
            *(["--force"] if force else []),
            stdout=out,
            stderr=io.StringIO(),
        )
    except CommandError as exc:
        assert "rejected" in str(exc)
    return {
        Path(item["path"]).name: Seen(item["verdict"], item["document_id"], item["reason"])
        for item in json.loads(out.getvalue())
    }


@pytest.fixture(params=["admin", "command"])
def take_in(request, tmp_path):
    """``take_in([(name, bytes), ...], force=False)`` through the admin upload or the command."""
    if request.param == "admin":
        return partial(via_admin, request.getfixturevalue("staff_client"))
    return partial(via_command, tmp_path / "incoming")


def existing(data: bytes, **fields) -> Document:
    """A document for ``data`` already in the index, in the state ``fields`` say."""
    document = intake.document_create(file=io.BytesIO(data), name="old.pdf", size=len(data))
    Document.objects.filter(pk=document.document.pk).update(**fields)
    return Document.objects.get(pk=document.document.pk)


# --- each outcome, through both doors ---------------------------------------------------------


def test_new_bytes_are_stored_and_queued(take_in, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("new.pdf", pdf("new"))])
    document = Document.objects.get()
    assert seen == {"new.pdf": Seen("queued", document.pk, "")}
    assert document.status == Status.QUEUED and document.last_task_id
    assert len(sent) == 1


def test_ready_bytes_are_already_present_and_nothing_is_sent(
    take_in, django_capture_on_commit_callbacks
):
    old = existing(pdf("ready"), status=Status.READY, last_task_id="done")
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("again.pdf", pdf("ready"))])
    assert seen["again.pdf"].verdict == "present" and seen["again.pdf"].document_id == old.pk
    old.refresh_from_db()
    assert (old.status, old.last_task_id, len(sent)) == (Status.READY, "done", 0)
    assert Document.objects.count() == 1


def test_ready_bytes_are_queued_again_when_forced(take_in, django_capture_on_commit_callbacks):
    old = existing(pdf("ready"), status=Status.READY, last_task_id="done")
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("again.pdf", pdf("ready"))], force=True)
    assert seen["again.pdf"] == Seen("requeued", old.pk, "Reingest forced.")
    old.refresh_from_db()
    assert old.status == Status.QUEUED and old.last_task_id not in ("", "done")
    assert len(sent) == 1


def test_failed_bytes_are_queued_again(take_in, django_capture_on_commit_callbacks):
    old = existing(pdf("failed"), status=Status.FAILED, error_code="corrupt", last_task_id="run")
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("again.pdf", pdf("failed"))])
    assert seen["again.pdf"] == Seen("requeued", old.pk, "Its last ingestion failed (corrupt).")
    old.refresh_from_db()
    assert old.status == Status.QUEUED and old.last_task_id not in ("", "run")
    assert len(sent) == 1


@pytest.mark.parametrize("state", [Status.QUEUED, Status.PROCESSING])
def test_stuck_bytes_are_queued_again(take_in, state, django_capture_on_commit_callbacks):
    long_ago = timezone.now() - selectors.stuck_after() - timedelta(minutes=1)
    old = existing(
        pdf("stuck"),
        status=state,
        last_task_id="lost",
        updated_at=long_ago,
        processing_started_at=long_ago,
    )
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("again.pdf", pdf("stuck"))])
    assert seen["again.pdf"].verdict == "requeued" and seen["again.pdf"].document_id == old.pk
    expected = "processing, silent for over " if state == Status.PROCESSING else "queued for over "
    assert seen["again.pdf"].reason.startswith(f"It was stuck: {expected}")
    old.refresh_from_db()
    assert old.status == Status.QUEUED and old.last_task_id not in ("", "lost")
    assert len(sent) == 1


@pytest.mark.parametrize("state", [Status.QUEUED, Status.PROCESSING])
def test_bytes_in_progress_are_left_alone_and_nothing_is_sent(
    take_in, state, django_capture_on_commit_callbacks
):
    now = timezone.now()
    old = existing(pdf("busy"), status=state, last_task_id="on its way", processing_started_at=now)
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("again.pdf", pdf("busy"))])
    assert seen["again.pdf"] == Seen("in_progress", old.pk, "")
    old.refresh_from_db()
    assert (old.status, old.last_task_id, len(sent)) == (state, "on its way", 0)


def test_the_same_bytes_twice_are_one_document_reported_as_repeated(
    take_in, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("first.pdf", pdf("same")), ("copy.pdf", pdf("same"))])
    document = Document.objects.get()
    assert seen["first.pdf"] == Seen("queued", document.pk, "")
    assert seen["copy.pdf"].verdict == "repeated"
    assert seen["copy.pdf"].document_id == document.pk
    assert seen["copy.pdf"].reason.startswith("The same bytes as ")
    assert seen["copy.pdf"].reason.endswith("first.pdf.")
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "The file is empty."),
        (b"MZ\x90\x00 an executable named .pdf", "The file is not a PDF"),
        (pdf("x" * 500), "the limit is"),
    ],
    ids=["empty", "not-a-pdf", "too-large"],
)
def test_unacceptable_files_are_rejected_with_the_reason_and_nothing_is_written(
    take_in, data, reason, settings, django_capture_on_commit_callbacks
):
    settings.RAG_MAX_UPLOAD_BYTES = 200
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("bad.pdf", data), ("good.pdf", pdf("good"))])
    assert seen["bad.pdf"].verdict == "rejected" and seen["bad.pdf"].document_id is None
    assert reason in seen["bad.pdf"].reason
    assert seen["good.pdf"].verdict == "queued"
    assert list(Document.objects.values_list("title", flat=True)) == ["good"]
    assert len(list(settings.MEDIA_ROOT.rglob("*.pdf"))) == 1
    assert len(sent) == 1


# --- the intake itself ------------------------------------------------------------------------


def test_an_unreadable_path_is_rejected_with_the_reason(tmp_path):
    report = intake.intake_files(
        files=[intake.IntakeFile(name="gone.pdf", source=tmp_path / "gone.pdf")]
    )
    (outcome,) = report.outcomes
    assert outcome.verdict == intake.Verdict.REJECTED
    assert outcome.reason == "Cannot read the file: No such file or directory."
    assert Document.objects.count() == 0


def test_a_title_given_with_the_file_names_the_new_document(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        report = intake.intake_files(
            files=[
                intake.IntakeFile(
                    name="scan_0042.pdf", source=io.BytesIO(pdf("t")), title="  Annual  report "
                )
            ]
        )
    assert Document.objects.get(pk=report.outcomes[0].document_id).title == "Annual report"


def create(data: bytes = pdf("one"), name: str = "Report_2024.pdf") -> intake.CreateResult:
    return intake.document_create(file=io.BytesIO(data), name=name, size=len(data))


def test_the_same_bytes_are_one_document():
    first = create()
    second = create(name="another-name.pdf")
    assert first.created and not second.created
    assert first.document.pk == second.document.pk
    assert Document.objects.count() == 1


def test_stored_name_comes_from_the_hash_not_the_upload_name():
    document = create(name="../../etc/passwd.pdf").document
    assert document.file.name == f"documents/{document.sha256[:2]}/{document.sha256}.pdf"
    assert document.title == "passwd"
    assert document.file.storage.open(document.file.name).read() == pdf("one")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"<html>not a pdf</html>", "not_pdf"),
        (b"PK\x03\x04 zip file named .pdf", "not_pdf"),
    ],
)
def test_files_that_are_not_pdfs_are_refused_and_nothing_is_written(data, code, settings):
    with pytest.raises(ValidationError) as caught:
        create(data)
    assert caught.value.code == code
    assert Document.objects.count() == 0
    assert not list((settings.MEDIA_ROOT).rglob("*.pdf"))


def test_files_over_the_size_limit_are_refused(settings):
    settings.RAG_MAX_UPLOAD_BYTES = 5
    with pytest.raises(ValidationError) as caught:
        create()
    assert caught.value.code == "too_large"


@pytest.mark.django_db(transaction=True)
def test_two_uploads_of_the_same_bytes_at_once_leave_one_document_and_one_file(
    monkeypatch, settings
):
    import threading

    from django.core.files.storage import FileSystemStorage
    from django.db import connections

    data = pdf("uploaded twice at once")
    real_save = FileSystemStorage.save
    raced = []

    def save_after_the_other_upload(self, name, content, *args, **kwargs):
        # Both uploads checked that no file exists; the other one saves and commits first.
        if not raced:
            raced.append(True)
            other = threading.Thread(target=other_upload)
            other.start()
            other.join()
        return real_save(self, name, content, *args, **kwargs)

    def other_upload():
        try:
            intake.document_create(file=io.BytesIO(data), name="other.pdf", size=len(data))
        finally:
            connections.close_all()

    monkeypatch.setattr(FileSystemStorage, "save", save_after_the_other_upload)
    result = intake.document_create(file=io.BytesIO(data), name="this.pdf", size=len(data))
    assert not result.created
    assert Document.objects.get().pk == result.document.pk
    stored = sorted(p.name for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())
    assert stored == [Path(result.document.file.name).name]


def storage_outage(kind: str) -> Exception:
    """What an S3-compatible storage raises while it is down or overloaded."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    if kind == "unreachable":
        return EndpointConnectionError(endpoint_url="http://storage.invalid:9000")
    return ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"
    )


@pytest.mark.parametrize("kind", ["unreachable", "throttled"])
def test_a_storage_outage_rejects_the_upload_to_try_again_and_writes_nothing(
    take_in, kind, monkeypatch, settings, django_capture_on_commit_callbacks
):
    from django.core.files.storage import FileSystemStorage

    def down(self, name, content):
        raise storage_outage(kind)

    monkeypatch.setattr(FileSystemStorage, "_save", down)
    with django_capture_on_commit_callbacks() as sent:
        seen = take_in([("report.pdf", pdf("storage down"))])
    assert seen["report.pdf"] == Seen("rejected", None, "File storage unavailable, try again.")
    assert not Document.objects.exists()
    assert not list(settings.MEDIA_ROOT.rglob("*.pdf"))
    assert sent == []
