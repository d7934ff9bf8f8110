"""HTML the admin shows for documents: status, progress, errors, labels, chunk previews.

One renderer serves the pages and the live updates: the progress endpoint sends these same
snippets, so a status looks the same whether the page drew it or a poll replaced it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from documents import selectors
from documents.models import Chunk, Document

Status = Document.Status
ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.PROCESSING})
# "cell": a table cell (list, upload outcomes, dashboard); "panel": the top of a document's page.
VARIANTS = ("cell", "panel")
CELL_MESSAGE_CHARS = 160
TEXT_PREVIEW_CHARS = 300


# --- small labels ---------------------------------------------------------------------------


def pages_label(page_start: int, page_end: int) -> str:
    """ "p. 3" for one page, "pp. 3–4" for a span."""
    if page_start == page_end:
        return f"p. {page_start}"
    return f"pp. {page_start}–{page_end}"


# How each reader is named to people (Document.page_sources keys).
PAGE_SOURCE_NAMES = {"pypdf": "text layer (pypdf)", "pdfium": "text layer (PDFium)", "ocr": "OCR"}


def ocr_label(ocr: bool, confidence: float | None) -> str:
    """ "OCR (confidence 91)" for text read by OCR, "" otherwise: such text may hold
    recognition errors."""
    if not ocr:
        return ""
    return "OCR" if confidence is None else f"OCR (confidence {confidence:.0f})"


def page_sources_label(
    page_sources: dict[str, int] | None, page_readers: dict[str, str] | None = None
) -> str:
    """Pages per reader, with the pages of each reader but pypdf (``page_readers``, ranges
    like "3-5,9") where they are known: "OCR 4 (pages 3–5, 9), text layer (pypdf) 10"."""
    readers = page_readers or {}
    parts = []
    for source, count in sorted((page_sources or {}).items()):
        if not count:
            continue
        part = f"{PAGE_SOURCE_NAMES.get(source, source)} {count}"
        if readers.get(source):
            pages = readers[source].replace("-", "–").replace(",", ", ")
            part += f" ({'page' if count == 1 else 'pages'} {pages})"
        parts.append(part)
    return ", ".join(parts) or "–"


def size_label(size_bytes: int) -> str:
    """A file size for people: 512 B, 24.0 KB, 2.5 MB."""
    size = float(size_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def when_label(moment: datetime | None) -> str:
    """A date and time in the current time zone, or a dash."""
    return localize(timezone.localtime(moment)) if moment else "–"


def stamp_label(moment: datetime | None) -> str:
    """A compact time to the second in the current time zone (runs seconds apart must differ)."""
    if moment is None:
        return "–"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def refreshable(key: str, content: Any) -> SafeString:
    """Wrap ``content`` so the page's live script can replace it with a fresher rendering."""
    return format_html('<span data-fca-refresh="{}">{}</span>', key, content)


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary near ``limit`` characters, with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


# --- a document's status ----------------------------------------------------------------------


def status_badge(document: Document) -> SafeString:
    """The status as a coloured pill."""
    return format_html(
        '<span class="fca-status fca-status-{}">{}</span>',
        document.status,
        document.get_status_display(),
    )


def progress_of(document: Document) -> tuple[int, int | None]:
    """Pages done and pages in all (None until the worker has opened the PDF)."""
    total = document.page_count
    done = document.pages_done
    if document.status == Status.READY and total:
        done = total
    if total is not None:
        done = min(done, total)
    return done, total


def progress_percent(document: Document) -> int | None:
    """Progress in whole percent, None while the page count is unknown."""
    done, total = progress_of(document)
    if not total:
        return None
    return round(100 * done / total)


def reingest_button(document: Document, label: str = "Reingest") -> SafeString:
    """A submit button that sends its enclosing form (any POST form with a CSRF token) to the
    document's reingest URL: one click, no script needed."""
    url = reverse("admin:documents_document_reingest", args=[document.pk])
    return format_html(
        '<button type="submit" class="button fca-reingest" formaction="{}" formmethod="post" '
        'formnovalidate data-fca-reingest="{}">{}</button>',
        url,
        document.pk,
        label,
    )


def _progress_bar(document: Document) -> SafeString:
    done, total = progress_of(document)
    if total is None:
        return mark_safe(
            '<progress class="fca-progress" aria-label="progress"></progress>'
            '<span class="fca-pages">opening the PDF…</span>'
        )
    return format_html(
        '<progress class="fca-progress" max="{}" value="{}" aria-label="pages done"></progress>'
        '<span class="fca-pages">{} / {} pages</span>',
        max(total, 1),
        done,
        done,
        total,
    )


def _stuck_note(document: Document) -> SafeString:
    # The same clocks as selectors.stuck_q: a queued document's last change, a processing one's
    # last heartbeat (a queued document may still carry the start of an earlier run).
    if document.status == Status.PROCESSING:
        what, since = "processing, silent", selectors.document_last_sign_of_life(document)
    else:
        what, since = "queued", document.updated_at
    return format_html(
        '<span class="fca-warn" title="Its message or worker was probably lost">'
        "stuck: {} for {}</span>",
        what,
        timesince(since) if since else "a long time",
    )


def _cell_body(document: Document, *, can_reingest: bool, stuck: bool) -> SafeString:
    parts: list[SafeString] = [status_badge(document)]
    if document.status == Status.QUEUED:
        parts.append(mark_safe('<span class="fca-note">waiting for a worker</span>'))
    elif document.status == Status.PROCESSING:
        parts.append(_progress_bar(document))
    elif document.status == Status.FAILED:
        parts.append(
            format_html(
                '<code class="fca-error-code">{}</code> <span class="fca-error-message" '
                'title="{}">{}</span>',
                document.error_code or "failed",
                document.error_message,
                shorten(document.error_message, CELL_MESSAGE_CHARS),
            )
        )
    if stuck:
        parts.append(_stuck_note(document))
    if can_reingest and (stuck or document.status == Status.FAILED):
        parts.append(reingest_button(document))
    return format_html_join(" ", "{}", ((part,) for part in parts))


def _panel_body(document: Document, *, can_reingest: bool, stuck: bool) -> SafeString:
    lines: list[SafeString] = []
    if document.status == Status.QUEUED:
        lines.append(mark_safe("<p>Waiting for a worker to take it.</p>"))
    elif document.status == Status.PROCESSING:
        percent = progress_percent(document)
        lines.append(
            format_html(
                '<p class="fca-panel-progress">{}{}</p>',
                _progress_bar(document),
                format_html(' <span class="fca-percent">{}%</span>', percent)
                if percent is not None
                else "",
            )
        )
    elif document.status == Status.READY:
        chunks_url = reverse("admin:documents_document_chunks", args=[document.pk])
        lines.append(
            format_html(
                '<p>{} pages, <a href="{}">{} chunks</a>, searchable since {}.</p>',
                document.page_count if document.page_count is not None else "?",
                chunks_url,
                document.chunk_count,
                when_label(document.ingested_at),
            )
        )
    elif document.status == Status.FAILED:
        lines.append(
            format_html(
                '<div class="fca-error"><p><strong>Ingestion failed:</strong> '
                '<code class="fca-error-code">{}</code></p><p class="fca-error-message">{}</p>'
                "{}</div>",
                document.error_code or "failed",
                document.error_message or "No reason was recorded.",
                format_html(
                    "<p>The previous version ({} chunks) is still searchable.</p>",
                    document.chunk_count,
                )
                if document.chunk_count
                else "",
            )
        )
    if stuck:
        lines.append(format_html("<p>{}</p>", _stuck_note(document)))
    if can_reingest and (stuck or document.status in (Status.READY, Status.FAILED)):
        lines.append(format_html("<p>{}</p>", reingest_button(document)))
    return format_html(
        '<div class="fca-panel-head">{}</div>{}',
        status_badge(document),
        format_html_join("", "{}", ((line,) for line in lines)),
    )


def live_status(
    document: Document,
    *,
    variant: str = "cell",
    can_reingest: bool = False,
    stuck_after: timedelta | None = None,
) -> SafeString:
    """A document's status, progress, error and reingest button, marked for live updates.

    The page's script polls the progress endpoint while ``data-fca-status`` is queued or
    processing and swaps the element for a fresh rendering when ``data-fca-version`` changes.
    """
    stuck = selectors.document_is_stuck(document, older_than=stuck_after or selectors.stuck_after())
    body = (
        _panel_body(document, can_reingest=can_reingest, stuck=stuck)
        if variant == "panel"
        else _cell_body(document, can_reingest=can_reingest, stuck=stuck)
    )
    done, total = progress_of(document)
    version = f"{document.status}:{done}/{total}:{int(stuck)}:{document.chunk_count}"
    return format_html(
        '<div class="fca-live fca-live-{}" data-fca-doc="{}" data-fca-status="{}" '
        'data-fca-variant="{}" data-fca-version="{}">{}</div>',
        variant,
        document.pk,
        document.status,
        variant,
        version,
        body,
    )


def progress_payload(
    document: Document, *, can_reingest: bool, stuck_after: timedelta
) -> dict[str, Any]:
    """What the progress endpoint says of one document: the figures, and its status rendered
    in every variant."""
    done, total = progress_of(document)
    return {
        "id": document.pk,
        "title": document.title,
        "status": document.status,
        "status_label": document.get_status_display(),
        "active": document.status in ACTIVE_STATUSES,
        "pages_done": done,
        "page_count": total,
        "percent": progress_percent(document),
        "chunk_count": document.chunk_count,
        "error_code": document.error_code,
        "error_message": document.error_message,
        "stuck": selectors.document_is_stuck(document, older_than=stuck_after),
        "updated_at": document.updated_at.isoformat() if document.updated_at else None,
        "html": {
            variant: str(
                live_status(
                    document,
                    variant=variant,
                    can_reingest=can_reingest,
                    stuck_after=stuck_after,
                )
            )
            for variant in VARIANTS
        },
    }


# --- chunks -----------------------------------------------------------------------------------


def chunks_preview_table(chunks: list[Chunk]) -> SafeString:
    """The first chunks of a document with their pages and token counts."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                chunk.ordinal,
                pages_label(chunk.page_start, chunk.page_end),
                chunk.token_count,
                ocr_label(chunk.ocr, chunk.ocr_confidence),
                shorten(chunk.text, TEXT_PREVIEW_CHARS),
            )
            for chunk in chunks
        ),
    )
    return format_html(
        '<table class="fca-chunks"><thead><tr><th>#</th><th>pages</th><th>tokens</th>'
        "<th>source</th><th>text</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )
