"""``manage.py documents_report``: a table of documents, their status, pages and chunks."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from documents.models import Document


class Command(BaseCommand):
    help = "Print one line per document: id, status, pages, chunks, embedder, title, error."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status",
            choices=[s.value for s in Document.Status],
            help="Only documents with this status.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        documents = Document.objects.order_by("pk")
        if options["status"]:
            documents = documents.filter(status=options["status"])
        header = f"{'id':>5}  {'status':<10} {'pages':>5} {'chunks':>6}  {'embedder':<40} title"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for d in documents:
            line = (
                f"{d.pk:>5}  {d.status:<10} {d.page_count or 0:>5} {d.chunk_count:>6}  "
                f"{(d.embedder or '-'):<40} {d.title}"
            )
            if d.status == Document.Status.FAILED:
                line += f"  [{d.error_code}: {d.error_message}]"
            self.stdout.write(line)
        self.stdout.write(f"{documents.count()} document(s)")
