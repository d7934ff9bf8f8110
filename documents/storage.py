"""Where uploaded PDFs are stored: names come from the content hash, never from the user."""

from __future__ import annotations

from typing import Any


def document_upload_path(instance: Any, filename: str) -> str:
    """``documents/ab/abcdef....pdf``: safe (no user input) and stable for the same bytes."""
    digest = instance.sha256
    return f"documents/{digest[:2]}/{digest}.pdf"
