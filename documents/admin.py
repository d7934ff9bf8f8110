"""Admin: document list, multi-PDF upload, reingest action, and read-only chunks."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django_celery_results.admin import TaskResultAdmin
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError as BrokerError

from documents import selectors, services
from documents.forms import SearchForm, UploadPdfsForm
from documents.highlight import highlight
from documents.models import Chunk, Document

logger = logging.getLogger(__name__)

CHUNK_PREVIEW = 10
STATUS_COLOURS = {
    Document.Status.QUEUED: "#6c757d",
    Document.Status.PROCESSING: "#0d6efd",
    Document.Status.READY: "#198754",
    Document.Status.FAILED: "#dc3545",
}


def stuck_after() -> timedelta:
    """How long a document may stay queued or processing before it counts as stuck."""
    return timedelta(seconds=settings.RAG_STUCK_AFTER_SECONDS)


class FlagFilter(admin.SimpleListFilter):
    """A filter with one choice: the documents a selector flags."""

    label = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", self.label)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> QuerySet[Document]:
        if self.value() == "yes":
            return queryset.filter(pk__in=self.flagged().values("pk"))
        return queryset

    def flagged(self) -> QuerySet[Document]:
        raise NotImplementedError


class StuckFilter(FlagFilter):
    """Queued or processing for longer than RAG_STUCK_AFTER_SECONDS: a lost message or worker."""

    title = "stuck"
    parameter_name = "stuck"
    label = "Stuck (queued or processing too long)"

    def flagged(self) -> QuerySet[Document]:
        return selectors.stuck_documents(older_than=stuck_after())


class StaleFilter(FlagFilter):
    """Ready documents embedded by another model than the one configured now."""

    title = "embedding"
    parameter_name = "stale"
    label = "Stale (embedded by another model)"

    def flagged(self) -> QuerySet[Document]:
        return selectors.stale_documents()


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Documents: list, upload several PDFs at once, reingest, and inspect results."""

    list_display = (
        "title",
        "status_badge",
        "page_count",
        "chunk_count",
        "size_display",
        "ingested_at",
        "created_at",
    )
    list_filter = ("status", StuckFilter, StaleFilter, "error_code", "embedder")
    search_fields = ("title", "=sha256")
    ordering = ("-created_at",)
    actions = ("reingest",)
    change_list_template = "admin/documents/document/change_list.html"
    fieldsets = (
        (None, {"fields": ("title", "status_badge", "error_code", "error_message")}),
        (
            "Content",
            {"fields": ("file", "sha256", "size_display", "page_count", "chunk_count", "embedder")},
        ),
        (
            "Ingestion",
            {
                "fields": (
                    "task_result_link",
                    "task_runs",
                    "timings",
                    "created_at",
                    "processing_started_at",
                    "ingested_at",
                    "updated_at",
                )
            },
        ),
        ("Chunks", {"fields": ("chunks_preview",)}),
    )
    # Everything shown but the title is written by ingestion, never edited by hand.
    readonly_fields = tuple(
        name for _, options in fieldsets for name in options["fields"] if name != "title"
    )

    # --- columns and fields ------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Document) -> str:
        colour = STATUS_COLOURS.get(obj.status, "#6c757d")
        return format_html(
            '<span class="fca-status fca-status-{}" style="color:#fff;background:{};'
            'padding:2px 8px;border-radius:10px;font-weight:600">{}</span>',
            obj.status,
            colour,
            obj.get_status_display(),
        )

    @admin.display(description="size", ordering="size_bytes")
    def size_display(self, obj: Document) -> str:
        size = float(obj.size_bytes)
        for unit in ("B", "KB", "MB", "GB"):
            if size < 1024 or unit == "GB":
                return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
            size /= 1024
        return ""

    @admin.display(description="latest task result")
    def task_result_link(self, obj: Document) -> str:
        result = selectors.document_task_result(obj)
        if result is None:
            return obj.last_task_id or "-"
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        return format_html('<a href="{}">{} ({})</a>', url, result.task_id, result.status)

    @admin.display(description="task runs")
    def task_runs(self, obj: Document) -> str:
        runs = selectors.document_task_runs(obj)
        if not runs:
            return "-"
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:django_celery_results_taskresult_change", args=[run.pk]),
                    run.date_created.strftime("%Y-%m-%d %H:%M:%S"),
                    run.status,
                    _duration(run),
                    run.worker or "-",
                    _outcome(run),
                )
                for run in runs
            ),
        )
        return format_html(
            '<table class="fca-runs"><thead><tr><th>queued</th><th>state</th><th>seconds</th>'
            "<th>worker</th><th>result or error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="chunks")
    def chunks_preview(self, obj: Document) -> str:
        chunks = selectors.document_chunks_preview(obj, limit=CHUNK_PREVIEW)
        if not chunks:
            return "No chunks."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    c.ordinal,
                    f"{c.page_start}"
                    if c.page_start == c.page_end
                    else f"{c.page_start}–{c.page_end}",
                    c.token_count,
                    c.text[:300] + ("…" if len(c.text) > 300 else ""),
                )
                for c in chunks
            ),
        )
        rest = obj.chunk_count - len(chunks)
        all_url = (
            reverse("admin:documents_chunk_changelist")
            + "?"
            + urlencode({"document__id__exact": obj.pk})
        )
        more = format_html(
            '<p><a href="{}">{}</a></p>',
            all_url,
            f"…and {rest} more (browse all {obj.chunk_count})" if rest > 0 else "Browse chunks",
        )
        return format_html(
            '<table class="fca-chunks"><thead><tr><th>#</th><th>pages</th><th>tokens</th>'
            "<th>text</th></tr></thead><tbody>{}</tbody></table>{}",
            rows,
            more,
        )

    # --- permissions: documents are created by upload, not by the add form -------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_upload_permission(self, request: HttpRequest) -> bool:
        """Uploading creates documents: it needs the add permission on the model."""
        return request.user.has_perm("documents.add_document")

    # --- reingest ----------------------------------------------------------------------------

    @admin.action(description="Reingest selected documents", permissions=["change"])
    def reingest(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        try:
            queued = services.document_ingest_enqueue(
                document_ids=ids, force=True, stuck_after=stuck_after()
            )
        except BrokerError:
            self._broker_down(request)
            return
        skipped = len(ids) - len(queued)
        self.message_user(request, f"Queued {len(queued)} document(s) for ingestion.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} document(s) skipped: already queued or processing (not stuck).",
                level=messages.WARNING,
            )

    # --- upload ------------------------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="documents_document_upload",
            ),
            path(
                "search/",
                self.admin_site.admin_view(self.search_view),
                name="documents_document_search",
            ),
        ]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {**(extra_context or {}), "can_upload": self.has_upload_permission(request)}
        return super().changelist_view(request, extra_context)

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """Upload several PDFs; each becomes a document queued for ingestion on commit."""
        if not self.has_upload_permission(request):
            return HttpResponse(status=403)
        form = UploadPdfsForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            self._store_uploads(request, form.cleaned_data["files"])
            return HttpResponseRedirect(reverse("admin:documents_document_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload PDFs",
            "form": form,
        }
        return TemplateResponse(request, "admin/documents/document/upload.html", context)

    def _store_uploads(self, request: HttpRequest, files: list[Any]) -> None:
        new_ids: list[int] = []
        for uploaded in files:
            outcome = services.document_create(
                file=uploaded, name=uploaded.name, size=uploaded.size
            )
            document = outcome.document
            if outcome.created:
                new_ids.append(document.pk)
                continue
            url = reverse("admin:documents_document_change", args=[document.pk])
            self.message_user(
                request,
                format_html(
                    '{}: already present as <a href="{}">{}</a> ({}); not duplicated.',
                    uploaded.name,
                    url,
                    document.title,
                    document.get_status_display(),
                ),
                level=messages.WARNING,
            )
        try:
            queued = services.document_ingest_enqueue(document_ids=new_ids)
        except BrokerError:
            self._broker_down(request)
            return
        if queued:
            self.message_user(request, f"Uploaded and queued {len(queued)} PDF(s) for ingestion.")

    # --- search ------------------------------------------------------------------------------

    def search_view(self, request: HttpRequest) -> HttpResponse:
        """Search the chunks: hits with their document, pages, score and highlighted snippet."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        form = SearchForm(request.GET or None)
        hits: list[dict] | None = None
        if form.is_valid():
            query = form.cleaned_data["q"]
            hits = selectors.chunk_search(
                query, k=form.cleaned_data["k"], mode=form.cleaned_data["mode"]
            )
            for hit in hits:
                hit["url"] = reverse("admin:documents_document_change", args=[hit["document_id"]])
                hit["snippet"] = highlight(hit["text"], query)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Search documents",
            "form": form,
            "hits": hits,
        }
        return TemplateResponse(request, "admin/documents/document/search.html", context)

    def _broker_down(self, request: HttpRequest) -> None:
        logger.exception("enqueue failed: broker unreachable")
        self.message_user(
            request,
            "The task queue (Redis) cannot be reached, so ingestion could not be started. The "
            "documents are saved and stay queued: once the broker is back they are picked up by "
            "`manage.py ingest --requeue-stuck` (or the periodic sweep).",
            level=messages.ERROR,
        )


def _duration(run: TaskResult) -> str:
    if run.date_started and run.date_done:
        return f"{(run.date_done - run.date_started).total_seconds():.1f}"
    return "-"


def _outcome(run: TaskResult) -> str:
    if not run.result:
        return "-"
    try:
        payload = json.loads(run.result)
    except ValueError:
        return run.result[:200]
    if isinstance(payload, dict) and "exc_type" in payload:
        message = " ".join(map(str, payload.get("exc_message") or []))
        return f"{payload['exc_type']}: {message}"[:300]
    if isinstance(payload, dict) and payload.get("status") == "success":
        return f"{payload.get('pages')} pages, {payload.get('chunks')} chunks"
    return json.dumps(payload)[:200]


admin.site.unregister(TaskResult)


@admin.register(TaskResult)
class IngestTaskResultAdmin(TaskResultAdmin):
    """django-celery-results' admin, with a link from each ingestion run to its document."""

    list_display = (*TaskResultAdmin.list_display, "document_link")
    fieldsets = (
        (None, {"fields": ("document_link",)}),
        *TaskResultAdmin.fieldsets,
    )

    def get_readonly_fields(self, request: HttpRequest, obj: TaskResult | None = None) -> list:
        return [*super().get_readonly_fields(request, obj), "document_link"]

    @admin.display(description="document")
    def document_link(self, obj: TaskResult) -> str:
        document_id = selectors.task_document_id(obj)
        if document_id is None:
            return "-"
        url = reverse("admin:documents_document_change", args=[document_id])
        return format_html('<a href="{}">document {}</a>', url, document_id)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    """Chunks are written by ingestion only: browse them, never edit them."""

    list_display = ("document", "ordinal", "pages", "token_count", "text_start")
    list_filter = ("embedder",)
    list_select_related = ("document",)
    search_fields = ("text",)
    ordering = ("document", "ordinal")
    exclude = ("embedding",)
    readonly_fields = (
        "document",
        "ordinal",
        "page_start",
        "page_end",
        "token_count",
        "embedder",
        "text",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chunk]:
        return super().get_queryset(request).defer("embedding")

    @admin.display(description="pages", ordering="page_start")
    def pages(self, obj: Chunk) -> str:
        if obj.page_start == obj.page_end:
            return f"p. {obj.page_start}"
        return f"pp. {obj.page_start}–{obj.page_end}"

    @admin.display(description="text")
    def text_start(self, obj: Chunk) -> str:
        return obj.text[:160] + ("…" if len(obj.text) > 160 else "")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Chunk | None = None) -> bool:
        return False
