"""``manage.py ingest PATH [PATH ...]``: create or find documents for PDFs and queue them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import OperationalError as BrokerError

from documents import selectors, services
from documents.models import Document

Status = Document.Status
FINISHED = {Status.READY, Status.FAILED}


@dataclass
class FileOutcome:
    """One line of the report (and one object of ``--json``)."""

    path: str
    document_id: int | None = None
    status: str = ""
    pages: int | None = None
    chunks: int | None = None
    error: str = ""


def find_pdfs(paths: list[str]) -> tuple[list[Path], list[FileOutcome]]:
    """Expand folders (recursively, ``*.pdf`` in any case); report paths that do not exist."""
    found: list[Path] = []
    missing: list[FileOutcome] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
            )
        elif path.is_file():
            found.append(path)
        else:
            missing.append(
                FileOutcome(path=raw, status="rejected", error="No such file or folder.")
            )
    return found, missing


@contextmanager
def broker_errors() -> Iterator[None]:
    """Turn "cannot reach the broker" into a clear command error."""
    try:
        yield
    except BrokerError as exc:
        raise CommandError(
            f"Cannot reach the Celery broker ({exc}). Is Redis running? See CELERY_BROKER_URL."
        ) from exc


class Command(BaseCommand):
    help = (
        "Ingest PDF files: create (or find, by content) a document for each file and queue it "
        "for the Celery worker. Folders are searched recursively for *.pdf."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="*", help="PDF files and/or folders to search for PDFs.")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Wait until every queued document is ready or failed; exit 1 if any failed.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Reingest files that are already ingested (ready).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print a JSON list of {path, document_id, status, pages, chunks, error} at the "
            "end instead of one line per file.",
        )
        parser.add_argument(
            "--requeue-stuck",
            action="store_true",
            help="Also enqueue again every stuck document, saying why it is stuck: processing "
            "with no heartbeat for RAG_HEARTBEAT_STALE_SECONDS (its worker died or gave up), "
            "queued and never sent, or queued with its message missing from the broker (Redis "
            "flushed or restarted; with another broker: queued for longer than --older-than).",
        )
        parser.add_argument(
            "--reembed-stale",
            action="store_true",
            help="Also reingest every ready document embedded by another model than the "
            "configured one (after changing the embedder).",
        )
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            help="With --requeue-stuck: seconds a queued document may wait before its message "
            "is looked for in the broker (at most 30) or, with a broker other than Redis, "
            "before it counts as stuck (default: RAG_STUCK_AFTER_SECONDS). A processing "
            "document is judged by its heartbeat only: a live ingestion is never requeued.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=3600.0,
            help="With --wait: give up after this many seconds (default 3600).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        self.requeued: dict[int, str] = {}
        if not options["paths"] and not options["requeue_stuck"] and not options["reembed_stale"]:
            raise CommandError(
                "Give PDF files or folders to ingest, or --requeue-stuck / --reembed-stale."
            )
        files, outcomes = find_pdfs(options["paths"])
        for outcome in outcomes:
            self._line(outcome)
        if options["paths"] and not files and not outcomes:
            raise CommandError("No PDF files found in: " + ", ".join(options["paths"]))

        by_document: dict[int, list[FileOutcome]] = {}
        if options["requeue_stuck"]:
            by_document.update(self._requeue_stuck(options["older_than"]))
        if options["reembed_stale"]:
            by_document.update(self._reembed_stale())
        outcomes.extend(o for items in by_document.values() for o in items)
        for path in files:
            outcome = self._register(path)
            outcomes.append(outcome)
            if outcome.document_id is not None:
                by_document.setdefault(outcome.document_id, []).append(outcome)

        new_ids = [d for d in by_document if d not in self.requeued]
        queued = dict(self.requeued)
        queued.update(self._enqueue(new_ids, force=options["force"]))
        documents = {d.pk: d for d in selectors.documents_by_ids(list(by_document))}
        for document_id, items in by_document.items():
            for outcome in items:
                was_queued = document_id in queued
                self._fill(outcome, documents[document_id], queued=was_queued)
                self._line(outcome, label="queued" if was_queued else "present")

        if options["wait"] and by_document:
            self._wait(by_document, timeout=options["timeout"])
        if self.as_json:
            self.stdout.write(json.dumps([asdict(o) for o in outcomes], indent=2))

        bad = [o for o in outcomes if o.status in ("rejected", Status.FAILED)]
        if options["wait"] and any(o.status not in FINISHED | {"rejected"} for o in outcomes):
            raise CommandError(f"Timed out after {options['timeout']:.0f}s waiting for the worker.")
        if bad:
            raise CommandError(f"{len(bad)} of {len(outcomes)} file(s) failed or were rejected.")

    # --- enqueueing ---------------------------------------------------------------------------

    def _enqueue(self, document_ids: list[int], *, force: bool) -> dict[int, str]:
        with broker_errors():
            return services.document_ingest_enqueue(document_ids=document_ids, force=force)

    def _requeue_stuck(self, older_than: float | None) -> dict[int, list[FileOutcome]]:
        delta = None if older_than is None else timedelta(seconds=older_than)
        with broker_errors():
            report = services.document_requeue_stuck(older_than=delta)
        # What was found and why goes to stdout, or to stderr when stdout carries the JSON.
        stream = self.stderr if self.as_json else self.stdout
        for found in report.found:
            did = "requeued" if found.task_id else "left alone (it moved on meanwhile)"
            stream.write(f"stuck      document {found.document_id}: {found.reason}; {did}")
        if not report.found:
            broker = "read" if report.broker_checked else "not read"
            stream.write(
                f"No stuck documents ({report.processing} processing, all with a recent "
                f"heartbeat; {report.queued} queued, broker {broker})."
            )
        return self._track({found.document_id: found.task_id for found in report.requeued})

    def _reembed_stale(self) -> dict[int, list[FileOutcome]]:
        stale = list(selectors.stale_documents().values_list("pk", flat=True))
        with broker_errors():
            queued = services.document_ingest_enqueue(document_ids=stale, force=True)
        if not queued and not self.as_json:
            self.stdout.write("No stale documents.")
        return self._track(queued)

    def _track(self, queued: dict[int, str]) -> dict[int, list[FileOutcome]]:
        """Report documents queued by id (not from a path), named by their stored file."""
        self.requeued.update(queued)
        return {
            document.pk: [FileOutcome(path=document.file.name, document_id=document.pk)]
            for document in selectors.documents_by_ids(list(queued))
        }

    # --- per file ----------------------------------------------------------------------------

    def _register(self, path: Path) -> FileOutcome:
        outcome = FileOutcome(path=str(path))
        try:
            with path.open("rb") as fh:
                created = services.document_create(
                    file=fh, name=path.name, size=path.stat().st_size
                )
        except ValidationError as exc:
            outcome.status, outcome.error = "rejected", " ".join(exc.messages)
            self._line(outcome)
            return outcome
        except OSError as exc:
            outcome.status, outcome.error = "rejected", f"Cannot read the file: {exc.strerror}."
            self._line(outcome)
            return outcome
        outcome.document_id = created.document.pk
        return outcome

    def _fill(self, outcome: FileOutcome, document: Document, *, queued: bool) -> None:
        outcome.status = "queued" if queued else document.status
        outcome.pages = document.page_count
        outcome.chunks = document.chunk_count
        failed = document.status == Status.FAILED
        outcome.error = f"{document.error_code}: {document.error_message}" if failed else ""

    def _line(self, outcome: FileOutcome, *, label: str = "") -> None:
        if self.as_json:
            return
        label = label or outcome.status
        detail = f"document {outcome.document_id}" if outcome.document_id else ""
        if label == "present":
            detail += f", {outcome.status}"
        if outcome.status == Status.READY:
            detail += f", {outcome.pages} pages, {outcome.chunks} chunks"
        if outcome.error:
            detail = f"{detail}: {outcome.error}" if detail else outcome.error
        message = f"{label:<10} {outcome.path}" + (f"  ({detail})" if detail else "")
        stream = self.stderr if outcome.status in ("rejected", Status.FAILED) else self.stdout
        stream.write(message)

    # --- waiting -----------------------------------------------------------------------------

    def _wait(self, by_document: dict[int, list[FileOutcome]], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(by_document)
        total = len(pending)
        last_drawn = None
        while pending and time.monotonic() < deadline:
            for document in selectors.documents_by_ids(list(pending)):
                if document.status in FINISHED:
                    pending.discard(document.pk)
                    for outcome in by_document[document.pk]:
                        self._fill(outcome, document, queued=False)
            done = total - len(pending)
            if done != last_drawn:
                self._progress(done, total)
                last_drawn = done
            if pending:
                time.sleep(0.5)
        self._progress_end()
        for document_id in by_document:
            for outcome in by_document[document_id]:
                if document_id in pending:
                    outcome.status = "timeout"
                    outcome.error = "Still not finished when --wait gave up."
                self._line(outcome)

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] {done}/{total} documents finished"
        if sys.stderr.isatty():
            self.stderr.write("\r" + text, ending="")
            self.stderr.flush()
        else:
            self.stderr.write(text)

    def _progress_end(self) -> None:
        if sys.stderr.isatty():
            self.stderr.write("")
