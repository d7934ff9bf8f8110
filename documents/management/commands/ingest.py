"""``manage.py ingest PATH [PATH ...]``: take PDFs in through the intake and queue them."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import OperationalError as BrokerError

from documents import selectors, services
from documents.intake import IntakeFile, IntakeOutcome, Verdict, intake_files
from documents.models import Document

Status = Document.Status
FINISHED = {Status.READY, Status.FAILED}
SENT = {Verdict.QUEUED, Verdict.REQUEUED}
BROKER_HINT = "Is Redis running? See CELERY_BROKER_URL."


@dataclass
class ReportLine:
    """One file's intake outcome and its document's state: one line of the report (and one
    object of ``--json``)."""

    outcome: IntakeOutcome
    status: str = ""
    pages: int | None = None
    chunks: int | None = None
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "path": outcome.name,
            "size": outcome.size,
            "verdict": outcome.verdict.value,
            "document_id": outcome.document_id,
            "reason": outcome.reason,
            "status": self.status,
            "pages": self.pages,
            "chunks": self.chunks,
            "error": self.error,
        }


def find_pdfs(paths: list[str]) -> list[Path]:
    """Expand folders (recursively, ``*.pdf`` in any case); keep other paths as given, so one
    that does not exist is reported by the intake as unreadable."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")
            )
        else:
            found.append(path)
    return found


@contextmanager
def broker_errors() -> Iterator[None]:
    """Turn "cannot reach the broker" into a clear command error."""
    try:
        yield
    except BrokerError as exc:
        raise CommandError(f"Cannot reach the Celery broker ({exc}). {BROKER_HINT}") from exc


class Command(BaseCommand):
    help = (
        "Ingest PDF files: create (or find, by content) a document for each file and queue it "
        "for the Celery worker: new files, and known ones that failed or are stuck (ready ones "
        "with --force). Folders are searched recursively for *.pdf."
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
            help="Print a JSON list of {path, size, verdict, document_id, reason, status, pages, "
            "chunks, error} at the end instead of one line per file.",
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
        if not options["paths"] and not options["requeue_stuck"] and not options["reembed_stale"]:
            raise CommandError(
                "Give PDF files or folders to ingest, or --requeue-stuck / --reembed-stale."
            )
        paths = find_pdfs(options["paths"])
        if options["paths"] and not paths:
            raise CommandError("No PDF files found in: " + ", ".join(options["paths"]))

        by_document: dict[int, list[ReportLine]] = {}
        if options["requeue_stuck"]:
            by_document.update(self._requeue_stuck(options["older_than"]))
        if options["reembed_stale"]:
            by_document.update(self._reembed_stale())
        lines = [line for items in by_document.values() for line in items]
        report = intake_files(
            files=[IntakeFile(name=str(path), source=path) for path in paths],
            force=options["force"],
        )
        lines.extend(ReportLine(outcome) for outcome in report.outcomes)
        self._fill(lines, just_sent=True)
        for line in lines:
            self._line(line, label=line.outcome.verdict, why=line.outcome.reason)

        if not report.messages_sent:
            self._json(lines)
            raise CommandError(
                "Cannot reach the Celery broker: the documents are stored and stay queued, and "
                f"`ingest --requeue-stuck` (or the periodic sweep) sends them later. {BROKER_HINT}"
            )
        if options["wait"]:
            self._wait(lines, timeout=options["timeout"])
        self._json(lines)

        bad = [line for line in lines if line.status in (Verdict.REJECTED, Status.FAILED)]
        if options["wait"] and any(
            line.status not in FINISHED | {Verdict.REJECTED} for line in lines
        ):
            raise CommandError(f"Timed out after {options['timeout']:.0f}s waiting for the worker.")
        if bad:
            raise CommandError(f"{len(bad)} of {len(lines)} file(s) failed or were rejected.")

    # --- documents queued by id ----------------------------------------------------------------

    def _requeue_stuck(self, older_than: float | None) -> dict[int, list[ReportLine]]:
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

    def _reembed_stale(self) -> dict[int, list[ReportLine]]:
        stale = list(selectors.stale_documents().values_list("pk", flat=True))
        with broker_errors():
            queued = services.document_ingest_enqueue(document_ids=stale, force=True)
        if not queued and not self.as_json:
            self.stdout.write("No stale documents.")
        return self._track(queued)

    def _track(self, queued: dict[int, str]) -> dict[int, list[ReportLine]]:
        """Report documents queued by id (not from a path), named by their stored file."""
        return {
            document.pk: [
                ReportLine(
                    IntakeOutcome(
                        name=document.file.name,
                        size=document.size_bytes,
                        verdict=Verdict.REQUEUED,
                        document_id=document.pk,
                    )
                )
            ]
            for document in selectors.documents_by_ids(list(queued))
        }

    # --- the report ---------------------------------------------------------------------------

    def _fill(self, lines: list[ReportLine], *, just_sent: bool = False) -> None:
        """Each line's document state from the database; with ``just_sent``, a document whose
        message this run sent reads "queued" (a fast worker may have started it already)."""
        ids = [line.outcome.document_id for line in lines if line.outcome.document_id]
        documents = {d.pk: d for d in selectors.documents_by_ids(ids)}
        for line in lines:
            document = documents.get(line.outcome.document_id or 0)
            if document is None:
                line.status, line.error = Verdict.REJECTED.value, line.outcome.reason
                continue
            sent = just_sent and line.outcome.verdict in SENT
            line.status = Status.QUEUED.value if sent else document.status
            line.pages, line.chunks = document.page_count, document.chunk_count
            failed = line.status == Status.FAILED
            line.error = f"{document.error_code}: {document.error_message}" if failed else ""

    def _line(self, line: ReportLine, *, label: str, why: str = "") -> None:
        if self.as_json:
            return
        outcome = line.outcome
        detail = [f"document {outcome.document_id}"] if outcome.document_id else []
        if line.status != label and outcome.verdict not in SENT | {Verdict.REJECTED}:
            detail.append(line.status)
        if line.status == Status.READY:
            detail.append(f"{line.pages} pages, {line.chunks} chunks")
        text = ", ".join(detail)
        why = line.error or why
        if why:
            text = f"{text}: {why}" if text else why
        message = f"{label:<11} {outcome.name}" + (f"  ({text})" if text else "")
        stream = self.stderr if line.status in (Verdict.REJECTED, Status.FAILED) else self.stdout
        stream.write(message)

    def _json(self, lines: list[ReportLine]) -> None:
        if self.as_json:
            self.stdout.write(json.dumps([line.as_json() for line in lines], indent=2))

    # --- waiting -----------------------------------------------------------------------------

    def _wait(self, lines: list[ReportLine], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {line.outcome.document_id for line in lines if line.outcome.document_id}
        total = len(pending)
        last_drawn = None
        while pending and time.monotonic() < deadline:
            for document in selectors.documents_by_ids(list(pending)):
                if document.status in FINISHED:
                    pending.discard(document.pk)
            done = total - len(pending)
            if done != last_drawn:
                self._progress(done, total)
                last_drawn = done
            if pending:
                time.sleep(0.5)
        self._progress_end()
        self._fill(lines)
        for line in lines:
            if line.outcome.document_id in pending:
                line.status = "timeout"
                line.error = "Still not finished when --wait gave up."
            self._line(line, label=line.status)

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
