"""The ingest command without a worker: discovery, per-file verdicts, text and JSON reports,
exit codes (the intake's rules themselves: test_intake)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from documents.models import Document

pytestmark = pytest.mark.django_db


def test_folders_are_searched_recursively_and_bad_files_reported_per_file(
    tmp_path, django_capture_on_commit_callbacks
):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4 a")
    (tmp_path / "sub" / "B.PDF").write_bytes(b"%PDF-1.4 b")
    (tmp_path / "sub" / "fake.pdf").write_bytes(b"hello, not a pdf")
    (tmp_path / "notes.txt").write_text("ignored")

    out, err = io.StringIO(), io.StringIO()
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(CommandError, match="2 of 4"):
            call_command(
                "ingest",
                str(tmp_path),
                str(tmp_path / "missing.pdf"),
                "--json",
                stdout=out,
                stderr=err,
            )
    report = {item["path"].rsplit("/", 1)[-1]: item for item in json.loads(out.getvalue())}
    assert set(report) == {"a.pdf", "B.PDF", "fake.pdf", "missing.pdf"}
    assert report["a.pdf"]["status"] == report["B.PDF"]["status"] == "queued"
    assert report["a.pdf"]["verdict"] == report["B.PDF"]["verdict"] == "queued"
    assert report["fake.pdf"]["status"] == report["fake.pdf"]["verdict"] == "rejected"
    assert "not a PDF" in report["fake.pdf"]["error"]
    assert report["missing.pdf"]["status"] == "rejected"
    assert report["missing.pdf"]["reason"] == "Cannot read the file: No such file or directory."
    assert Document.objects.count() == 2
    assert len(callbacks) == 2


def test_human_output_has_one_line_per_file(tmp_path, django_capture_on_commit_callbacks):
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4 a")
    out = io.StringIO()
    with django_capture_on_commit_callbacks():
        call_command("ingest", str(tmp_path / "a.pdf"), stdout=out, stderr=io.StringIO())
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("queued") and "a.pdf" in lines[0]


def test_reembed_stale_queues_ready_documents_of_another_embedder(
    django_capture_on_commit_callbacks, settings
):
    from documents.intake import document_create

    settings.RAG_EMBEDDER = "hash"
    ids = []
    for index, embedder in enumerate(["sentence-transformers/old-model", "hash-384"]):
        data = b"%PDF-1.4 " + bytes([index])
        document = document_create(file=io.BytesIO(data), name="x.pdf", size=len(data)).document
        Document.objects.filter(pk=document.pk).update(status="ready", embedder=embedder)
        ids.append(document.pk)
    out = io.StringIO()
    with django_capture_on_commit_callbacks() as callbacks:
        call_command("ingest", "--reembed-stale", "--json", stdout=out, stderr=io.StringIO())
    report = json.loads(out.getvalue())
    assert [item["document_id"] for item in report] == [ids[0]]
    assert report[0]["status"] == "queued"
    assert len(callbacks) == 1


def test_human_output_says_each_verdict_and_sends_rejections_to_stderr(
    tmp_path, django_capture_on_commit_callbacks
):
    from documents.intake import document_create

    folder = tmp_path / "in"  # not tmp_path itself: the media folder is in there
    folder.mkdir()
    for name, status in [("ready.pdf", "ready"), ("failed.pdf", "failed")]:
        data = b"%PDF-1.4 " + name.encode()
        (folder / name).write_bytes(data)
        document = document_create(file=io.BytesIO(data), name=name, size=len(data)).document
        Document.objects.filter(pk=document.pk).update(
            status=status, error_code="corrupt", page_count=3, chunk_count=7
        )
    (folder / "new.pdf").write_bytes(b"%PDF-1.4 new")
    (folder / "empty.pdf").write_bytes(b"")
    out, err = io.StringIO(), io.StringIO()
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(CommandError, match="1 of 4"):
            call_command("ingest", str(folder), stdout=out, stderr=err)
    lines = {line.split()[1].rsplit("/", 1)[-1]: line for line in out.getvalue().splitlines()}
    assert lines["ready.pdf"].startswith("present ")
    assert "ready, 3 pages, 7 chunks" in lines["ready.pdf"]
    assert lines["failed.pdf"].startswith("requeued ")
    assert "Its last ingestion failed (corrupt)." in lines["failed.pdf"]
    assert lines["new.pdf"].startswith("queued ")
    assert err.getvalue().startswith("rejected ") and "The file is empty." in err.getvalue()
    assert len(callbacks) == 2


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_keeps_the_documents_queued_and_fails_the_command(
    tmp_path, monkeypatch
):
    from kombu.exceptions import OperationalError

    from documents.intake import document_create
    from fca_site.celery import app

    folder = tmp_path / "in"  # not tmp_path itself: the media folder is in there
    folder.mkdir()
    failed = b"%PDF-1.4 failed before"
    document_create(file=io.BytesIO(failed), name="failed.pdf", size=len(failed))
    Document.objects.update(status="failed", error_code="corrupt")
    (folder / "failed.pdf").write_bytes(failed)
    (folder / "new.pdf").write_bytes(b"%PDF-1.4 new")

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to localhost:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    out = io.StringIO()
    with pytest.raises(CommandError, match="Cannot reach the Celery broker.*stay queued"):
        call_command("ingest", str(folder), "--json", stdout=out, stderr=io.StringIO())
    report = {item["path"].rsplit("/", 1)[-1]: item for item in json.loads(out.getvalue())}
    assert report["new.pdf"]["verdict"] == "queued"
    assert report["failed.pdf"]["verdict"] == "requeued"
    assert set(Document.objects.values_list("status", flat=True)) == {"queued"}
    assert Document.objects.count() == 2
