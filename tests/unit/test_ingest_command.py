"""The ingest command without a worker: discovery, per-file rejection, JSON report."""

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
    assert report["fake.pdf"]["status"] == "rejected"
    assert "not a PDF" in report["fake.pdf"]["error"]
    assert report["missing.pdf"]["status"] == "rejected"
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
    from documents.services import document_create

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
