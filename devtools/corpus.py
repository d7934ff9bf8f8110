"""The real-world PDF corpus (``../shared/corpus`` or ``FCA_CORPUS_DIR``) and its manifest."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = Path(os.environ.get("FCA_CORPUS_DIR", ROOT.parent / "shared" / "corpus"))


@dataclass(frozen=True)
class CorpusEntry:
    """One row of the corpus MANIFEST.tsv."""

    filename: str
    pages: str
    encrypted: str
    extractable_chars: int

    @property
    def path(self) -> Path:
        return CORPUS_DIR / self.filename

    @property
    def page_count(self) -> int | None:
        return int(self.pages) if self.pages.isdigit() else None


def load_manifest() -> dict[str, CorpusEntry]:
    """The corpus manifest by file name (empty when the corpus is absent)."""
    manifest = CORPUS_DIR / "MANIFEST.tsv"
    if not manifest.exists():
        return {}
    with manifest.open(newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        return {
            row["filename"]: CorpusEntry(
                filename=row["filename"],
                pages=row["pages"],
                encrypted=row["encrypted"],
                extractable_chars=int(row["extractable_chars"] or 0),
            )
            for row in rows
        }
