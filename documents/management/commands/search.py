"""``manage.py search "QUERY"``: the best chunks, with their document and pages."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents import ingestion, presenters
from documents.highlight import CHUNK_TEXT_CHARS, excerpt


class Command(BaseCommand):
    help = "Search the ingested documents; prints title, pages, score and a snippet per hit."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("query", help="What to look for (words or a question).")
        parser.add_argument("-k", type=int, default=5, help="How many hits (default 5).")
        parser.add_argument(
            "--mode",
            choices=ingestion.SEARCH_MODES,
            default="hybrid",
            help="hybrid (default): vector and full-text fused; vector: embeddings only; "
            "text: PostgreSQL full-text only.",
        )
        parser.add_argument(
            "--document", type=int, action="append", help="Only this document id (repeatable)."
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help=f"Print the hits as JSON (each hit's text cut after {CHUNK_TEXT_CHARS} "
            "characters, saying how many more there are; text_chars gives its full length).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["k"] < 1:
            raise CommandError("-k must be at least 1.")
        filters = ingestion.SearchFilters(document_ids=options["document"])
        hits = ingestion.search(
            options["query"], k=options["k"], mode=options["mode"], filters=filters
        )
        for hit in hits:
            # Never more than an excerpt of a chunk (see documents.highlight).
            hit["text"] = excerpt(hit["text"], total=hit["text_chars"])
        if options["json"]:
            self.stdout.write(json.dumps(hits, indent=2, ensure_ascii=False))
            return
        if not hits:
            self.stdout.write("No results.")
            return
        for rank, hit in enumerate(hits, start=1):
            pages = (
                f"p. {hit['page_start']}"
                if hit["page_start"] == hit["page_end"]
                else f"pp. {hit['page_start']}-{hit['page_end']}"
            )
            ocr = presenters.ocr_label(hit["ocr"], hit["ocr_confidence"])
            self.stdout.write(
                f"{rank}. {hit['title']} ({pages})  score {hit['score']:.4f}  "
                f"[document {hit['document_id']}]" + (f"  {ocr}" if ocr else "")
            )
            snippet = textwrap.shorten(hit["text"], width=300, placeholder=" ...")
            self.stdout.write(textwrap.indent(textwrap.fill(snippet, width=96), "   "))
