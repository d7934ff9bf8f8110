"""``manage.py make_sample_pdfs [OUT_DIR]``: render the project's documentation to sample PDFs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents.samples import SAMPLE_SOURCES, make_sample_pdfs


class Command(BaseCommand):
    help = (
        "Render the project's Markdown documentation ("
        + ", ".join(SAMPLE_SOURCES)
        + ") to multi-page sample PDFs for the quick start. The same documentation always "
        "gives the same bytes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "out_dir",
            nargs="?",
            type=Path,
            default=None,
            help="Folder for the PDFs, created if needed (default: BASE_DIR/.data/samples).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base_dir = Path(settings.BASE_DIR)
        out_dir: Path = options["out_dir"] or base_dir / ".data" / "samples"
        try:
            written = make_sample_pdfs(base_dir=base_dir, out_dir=out_dir)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        for path, pages in written:
            self.stdout.write(f"wrote {path} ({pages} pages)")
