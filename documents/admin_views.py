"""The document admin's own pages: upload with per-file outcomes, live progress (JSON), one-click
reingest, requeue of stuck documents, a document's chunks page by page, and its stored PDF.

Each view is a function of the ``DocumentAdmin`` and the request; ``DocumentAdmin.get_urls``
wraps them in ``admin_site.admin_view`` (staff only, never cached).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models.functions import Left, Length
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from kombu.exceptions import OperationalError as BrokerError

from documents import presenters, selectors, services, storage
from documents.forms import UploadPdfsForm
from documents.highlight import CHUNK_TEXT_CHARS, excerpt, mark_words
from documents.intake import IntakeFile, IntakeOutcome, IntakeReport, Verdict, intake_files
from documents.models import Chunk, Document

if TYPE_CHECKING:
    from documents.admin import DocumentAdmin

logger = logging.getLogger(__name__)

UPLOADS_SESSION_KEY = "documents_uploads"
UPLOADS_KEPT = 5
MAX_PROGRESS_IDS = 500
CHUNKS_PER_PAGE = (10, 25, 50, 100)
DEFAULT_CHUNKS_PER_PAGE = 25
BROKER_DOWN = (
    "The task queue (Redis) cannot be reached, so ingestion could not be started. The documents "
    "are saved and stay queued: once the broker is back they are picked up by "
    "`manage.py ingest --requeue-stuck` (or the periodic sweep)."
)


def admin_context(model_admin: admin.ModelAdmin, request: HttpRequest, **extra: Any) -> dict:
    """The context every admin page needs (site header, sidebar, permissions), plus ``extra``."""
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        **extra,
    }


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Back to the page the request came from, when it is on this site; else ``fallback``."""
    target = request.POST.get("next") or request.META.get("HTTP_REFERER", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(fallback)


def broker_down(request: HttpRequest) -> None:
    """Tell the user that nothing could be sent to the workers, and what happens next."""
    messages.error(request, BROKER_DOWN)


# --- upload -----------------------------------------------------------------------------------


def upload_view(model_admin: DocumentAdmin, request: HttpRequest) -> HttpResponse:
    """Upload many PDFs; then show, per file, its intake verdict (queued, queued again, already
    present or in progress, with a link; or rejected, and why), with live ingestion progress.

    The outcome is kept in the session and shown after a redirect, so reloading the page never
    uploads again.
    """
    if not model_admin.has_upload_permission(request):
        raise PermissionDenied
    form = (
        UploadPdfsForm(request.POST, request.FILES)
        if request.method == "POST"
        else UploadPdfsForm()
    )
    if form.is_bound and form.is_valid():
        files = [
            IntakeFile(
                name=uploaded.name or "unnamed.pdf",
                source=uploaded,
                collection=form.cleaned_data["collection"],
            )
            for uploaded in form.cleaned_data["files"]
        ]
        report = intake_files(files=files, force=form.cleaned_data["force"])
        if not report.messages_sent:
            broker_down(request)
        batch = _remember_upload(request, report)
        url = reverse("admin:documents_document_upload")
        return HttpResponseRedirect(f"{url}?{urlencode({'batch': batch})}")
    outcomes = _recall_upload(request, request.GET.get("batch", ""))
    rows = _outcome_rows(model_admin, request, outcomes)
    context = admin_context(
        model_admin,
        request,
        title="Upload PDFs",
        form=form,
        rows=rows,
        summary=_upload_summary(outcomes),
        max_upload_bytes=settings.RAG_MAX_UPLOAD_BYTES,
        max_upload_files=settings.DATA_UPLOAD_MAX_NUMBER_FILES or 0,
    )
    return TemplateResponse(request, "admin/documents/document/upload.html", context)


def _remember_upload(request: HttpRequest, report: IntakeReport) -> str:
    batch = uuid.uuid4().hex[:12]
    kept: dict[str, list[dict]] = dict(request.session.get(UPLOADS_SESSION_KEY, {}))
    kept[batch] = [
        {**asdict(outcome), "verdict": outcome.verdict.value} for outcome in report.outcomes
    ]
    # Insertion order is kept: drop the oldest uploads beyond the last few.
    for old in list(kept)[:-UPLOADS_KEPT]:
        del kept[old]
    request.session[UPLOADS_SESSION_KEY] = kept
    return batch


def _recall_upload(request: HttpRequest, batch: str) -> list[IntakeOutcome]:
    stored = request.session.get(UPLOADS_SESSION_KEY, {}).get(batch, [])
    return [IntakeOutcome(**{**item, "verdict": Verdict(item["verdict"])}) for item in stored]


def _upload_summary(outcomes: list[IntakeOutcome]) -> str:
    if not outcomes:
        return ""
    counts: dict[Verdict, int] = {}
    for outcome in outcomes:
        counts[outcome.verdict] = counts.get(outcome.verdict, 0) + 1
    parts = [f"{n} {verdict.label.lower()}" for verdict, n in counts.items()]
    return f"{len(outcomes)} file{'s' if len(outcomes) != 1 else ''}: {', '.join(parts)}"


def _outcome_rows(
    model_admin: DocumentAdmin, request: HttpRequest, outcomes: list[IntakeOutcome]
) -> list[dict[str, Any]]:
    ids = [o.document_id for o in outcomes if o.document_id is not None]
    documents = {d.pk: d for d in selectors.documents_progress(ids)}
    can_reingest = model_admin.has_change_permission(request)
    stuck_after = selectors.stuck_after()
    rows = []
    for outcome in outcomes:
        row: dict[str, Any] = {
            "outcome": outcome,
            "verdict_label": outcome.verdict.label,
            "size": presenters.size_label(outcome.size),
            "document": documents.get(outcome.document_id or 0),
        }
        document = row["document"]
        if document is not None:
            row["url"] = reverse("admin:documents_document_change", args=[document.pk])
            row["live"] = presenters.live_status(
                document, can_reingest=can_reingest, stuck_after=stuck_after
            )
            row["pages"] = presenters.refreshable(
                f"doc-{document.pk}-pages", document.page_count or "–"
            )
            row["chunks"] = presenters.refreshable(
                f"doc-{document.pk}-chunks", document.chunk_count
            )
        rows.append(row)
    return rows


# --- live progress ----------------------------------------------------------------------------


def progress_view(model_admin: DocumentAdmin, request: HttpRequest) -> JsonResponse:
    """``?ids=1,2,3``: status, pages done of total, chunks and error of those documents, with
    their status rendered as the pages show it (``html``), for the pages' live updates."""
    if not model_admin.has_view_permission(request):
        return JsonResponse({"error": "You may not view documents."}, status=403)
    raw = [part for part in request.GET.get("ids", "").split(",") if part.strip()]
    if len(raw) > MAX_PROGRESS_IDS:
        return JsonResponse({"error": f"At most {MAX_PROGRESS_IDS} ids at once."}, status=400)
    try:
        ids = sorted({int(part) for part in raw})
    except ValueError:
        return JsonResponse({"error": "ids must be comma-separated integers."}, status=400)
    can_reingest = model_admin.has_change_permission(request)
    stuck_after = selectors.stuck_after()
    documents = [
        presenters.progress_payload(d, can_reingest=can_reingest, stuck_after=stuck_after)
        for d in selectors.documents_progress(ids)
    ]
    response = JsonResponse({"documents": documents, "active": sum(d["active"] for d in documents)})
    response["Cache-Control"] = "no-store"
    return response


# --- reingest one, requeue the stuck ----------------------------------------------------------


def reingest_view(model_admin: DocumentAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """Queue one document again (ready, failed or stuck): the one-click "Reingest" button."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    document = _document_or_404(object_id)
    change_url = reverse("admin:documents_document_change", args=[document.pk])
    try:
        queued = services.document_ingest_enqueue(
            document_ids=[document.pk], force=True, stuck_after=selectors.stuck_after()
        )
    except BrokerError:
        logger.exception("reingest failed: broker unreachable document_id=%d", document.pk)
        broker_down(request)
        return redirect_back(request, change_url)
    if queued:
        messages.success(request, f"“{document.title}” is queued for ingestion.")
    else:
        messages.warning(
            request,
            f"“{document.title}” is already queued or processing (and not stuck): left alone.",
        )
    return redirect_back(request, change_url)


def requeue_stuck_view(model_admin: DocumentAdmin, request: HttpRequest) -> HttpResponse:
    """Send again every document stuck in the queue or in processing (lost message or worker)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    try:
        queued = services.document_requeue_stuck(older_than=selectors.stuck_after()).requeued
    except BrokerError:
        logger.exception("requeue of stuck documents failed: broker unreachable")
        broker_down(request)
    else:
        messages.success(request, f"Queued {len(queued)} stuck document(s) again.")
    return redirect_back(request, reverse("admin:index"))


# --- chunks -----------------------------------------------------------------------------------


def chunks_view(model_admin: DocumentAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """A document's chunks, page by page, with the PDF pages each comes from; narrowed to one
    PDF page (``?pdf_page=``) or to chunks containing words (``?q=``)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    document = _document_or_404(object_id)
    query = request.GET.get("q", "").strip()[:200]
    pdf_page = _positive_int(request.GET.get("pdf_page"))
    per_page = _positive_int(request.GET.get("per_page"))
    if per_page not in CHUNKS_PER_PAGE:
        per_page = DEFAULT_CHUNKS_PER_PAGE
    # Only the start of each chunk leaves the database (see documents.highlight).
    chunk_rows = (
        selectors.document_chunks(document, pdf_page=pdf_page, text=query)
        .defer("text")
        .annotate(text_head=Left("text", CHUNK_TEXT_CHARS), text_chars=Length("text"))
    )
    paginator = Paginator(chunk_rows, per_page)
    page = paginator.get_page(request.GET.get("page"))
    kept = {"q": query, "pdf_page": pdf_page or "", "per_page": per_page}
    kept = {key: value for key, value in kept.items() if value}

    def page_url(number: int) -> str:
        return "?" + urlencode({**kept, "page": number})

    def shown(chunk: Chunk) -> str:
        text = excerpt(chunk.text_head, total=chunk.text_chars)
        return mark_words(text, query) if query else text

    chunks = [
        {
            "chunk": chunk,
            "pages": presenters.pages_label(chunk.page_start, chunk.page_end),
            "source": presenters.ocr_label(chunk.ocr, chunk.ocr_confidence),
            "text": shown(chunk),
        }
        for chunk in page.object_list
    ]
    page_links = [
        {"number": n, "url": page_url(n) if isinstance(n, int) else "", "current": n == page.number}
        for n in paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1)
    ]
    context = admin_context(
        model_admin,
        request,
        title=f"Chunks of “{document.title}”",
        document=document,
        page_sources=presenters.page_sources_label(document.page_sources, document.page_readers),
        document_url=reverse("admin:documents_document_change", args=[document.pk]),
        live=presenters.live_status(document, stuck_after=selectors.stuck_after()),
        page=page,
        paginator=paginator,
        chunks=chunks,
        page_links=page_links,
        previous_url=page_url(page.previous_page_number()) if page.has_previous() else "",
        next_url=page_url(page.next_page_number()) if page.has_next() else "",
        query=query,
        pdf_page=pdf_page,
        per_page=per_page,
        per_page_choices=CHUNKS_PER_PAGE,
        filtered=bool(query or pdf_page),
    )
    return TemplateResponse(request, "admin/documents/document/chunks.html", context)


def _document_or_404(object_id: str) -> Document:
    document_id = _positive_int(object_id)
    document = selectors.documents_by_ids([document_id]).first() if document_id else None
    if document is None:
        raise Http404(f"No document with id {object_id!r}.")
    return document


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number > 0 else None


def file_view(model_admin: DocumentAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """The stored PDF, streamed by this site to staff who may view the document: the bucket
    stays private and no URL that works without a login is ever handed out."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    document = _document_or_404(object_id)
    try:
        handle = document.file.storage.open(document.file.name, "rb")
    except Exception as exc:
        fault = storage.storage_fault(exc)
        if fault is None:
            raise
        logger.warning("stored file unavailable document_id=%d fault=%s", document.pk, fault)
        if fault is storage.StorageFault.MISSING:
            raise Http404("The stored file is missing.") from exc
        return HttpResponse(
            f"The file storage cannot hand over this file now ({fault}).",
            status=503,
            content_type="text/plain",
        )
    return FileResponse(
        handle, content_type="application/pdf", filename=f"{document.title[:100]}.pdf"
    )
