"""Typed ingestion errors: each class means one thing, and its ``code`` is stored on the document.

Permanent errors are properties of the input (retrying cannot help); transient errors are
properties of the environment (database or network) and are worth retrying.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error the service raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermanentIngestError(IngestError):
    """The document cannot be ingested as it is; do not retry."""

    code = "failed"


class NotAPdfError(PermanentIngestError):
    """The bytes are not a PDF."""

    code = "not_pdf"


class EncryptedPdfError(PermanentIngestError):
    """The PDF needs a password (or uses an encryption we cannot read)."""

    code = "encrypted"


class CorruptPdfError(PermanentIngestError):
    """The PDF is damaged: its structure or its page contents cannot be read."""

    code = "corrupt"


class NoTextError(PermanentIngestError):
    """The PDF has no extractable text (scanned images without an OCR layer, blank pages)."""

    code = "no_text"


class TooLargeError(PermanentIngestError):
    """The PDF exceeds a configured limit (pages, or text on one page)."""

    code = "too_large"


class TooComplexError(PermanentIngestError):
    """Reading the PDF takes longer than its budget (one page, or the document for its pages)."""

    code = "too_complex"


class DocumentMissingError(PermanentIngestError):
    """The document row no longer exists (deleted while queued)."""

    code = "missing"


class StoredFileMissingError(PermanentIngestError):
    """The document's file is not in storage (a worker that cannot see the shared storage)."""

    code = "missing_file"


class StorageDeniedError(PermanentIngestError):
    """The file storage refuses to hand over the file (access denied, credentials refused)."""

    code = "storage_denied"


class EmbedderMismatchError(PermanentIngestError):
    """The embedder's vectors do not fit the database column."""

    code = "embedder_mismatch"


class ReaderCrashedError(IngestError):
    """The page reader was killed by a signal (out of memory, an operator): not the file's
    fault for sure, so it is retried like a worker that died, up to the attempts limit."""

    code = "crashed"


class TransientIngestError(IngestError):
    """The environment failed (database or network); the same input may succeed later."""

    code = "transient"
