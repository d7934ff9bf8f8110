"""Admin: documents with live status, upload, reingest, chunks and task runs; read-only chunks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django_celery_results.admin import TaskResultAdmin
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError as BrokerError

from documents import admin_views, ingestion, presenters, runs, selectors, services
from documents.admin_api_keys import ApiKeyAdmin
from documents.admin_filters import OcrFilter, StaleFilter, StuckFilter
from documents.forms import SearchForm
from documents.highlight import excerpt, highlight
from documents.models import Chunk, Document

logger = logging.getLogger(__name__)

__all__ = ["ApiKeyAdmin", "ChunkAdmin", "DocumentAdmin"]

CHUNK_PREVIEW = 10


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Documents: list with live progress, upload many PDFs, reingest, and inspect results."""

    list_filter = (
        "status",
        "collection",
        StuckFilter,
        StaleFilter,
        OcrFilter,
        "error_code",
        "embedder",
    )
    search_fields = ("title", "=sha256")
    ordering = ("-created_at",)
    actions = ("reingest",)
    change_list_template = "admin/documents/document/change_list.html"
    change_form_template = "admin/documents/document/change_form.html"
    fieldsets = (
        (None, {"fields": ("title", "collection")}),
        (
            "Content",
            {
                "fields": (
                    "file_link",
                    "sha256",
                    "size_display",
                    "pages_display",
                    "page_sources_display",
                    "chunks_display",
                    "embedder",
                )
            },
        ),
        (
            "Ingestion",
            {
                "fields": (
                    "task_runs",
                    "timings_display",
                    "created_at",
                    "processing_started_display",
                    "ingested_display",
                )
            },
        ),
        ("Chunks", {"fields": ("chunks_preview",)}),
    )
    # Everything shown but the title and collection is written by ingestion, never by hand.
    readonly_fields = tuple(
        name
        for _, options in fieldsets
        for name in options["fields"]
        if name not in ("title", "collection")
    )

    # --- the list: its status column is live and carries the reingest button ----------------

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        return (
            "title",
            self._status_column(request),
            "pages_display",
            "chunks_display",
            "size_display",
            "ingested_display",
            "created_at",
        )

    def _status_column(self, request: HttpRequest) -> Callable[[Document], SafeString]:
        can_reingest = self.has_change_permission(request)
        stuck_after = selectors.stuck_after()

        @admin.display(description="status", ordering="status")
        def status(obj: Document) -> SafeString:
            return presenters.live_status(obj, can_reingest=can_reingest, stuck_after=stuck_after)

        return status

    # --- columns and fields ------------------------------------------------------------------

    @admin.display(description="file")
    def file_link(self, obj: Document) -> SafeString:
        url = reverse("admin:documents_document_file", args=[obj.pk])
        return format_html('<a class="fca-file-link" href="{}">{}</a>', url, obj.file.name)

    @admin.display(description="size", ordering="size_bytes")
    def size_display(self, obj: Document) -> str:
        return presenters.size_label(obj.size_bytes)

    @admin.display(description="pages", ordering="page_count")
    def pages_display(self, obj: Document) -> SafeString:
        return presenters.refreshable(f"doc-{obj.pk}-pages", obj.page_count or "–")

    @admin.display(description="pages read by")
    def page_sources_display(self, obj: Document) -> str:
        return presenters.page_sources_label(obj.page_sources, obj.page_readers)

    @admin.display(description="chunks", ordering="chunk_count")
    def chunks_display(self, obj: Document) -> SafeString:
        if not obj.chunk_count:
            return presenters.refreshable(f"doc-{obj.pk}-chunks", 0)
        url = reverse("admin:documents_document_chunks", args=[obj.pk])
        return presenters.refreshable(
            f"doc-{obj.pk}-chunks", format_html('<a href="{}">{}</a>', url, obj.chunk_count)
        )

    @admin.display(description="ingested", ordering="ingested_at")
    def ingested_display(self, obj: Document) -> SafeString:
        return presenters.refreshable(
            f"doc-{obj.pk}-ingested", presenters.when_label(obj.ingested_at)
        )

    @admin.display(description="processing started")
    def processing_started_display(self, obj: Document) -> SafeString:
        return presenters.refreshable(
            f"doc-{obj.pk}-started", presenters.when_label(obj.processing_started_at)
        )

    @admin.display(description="seconds per stage (last success)")
    def timings_display(self, obj: Document) -> SafeString:
        stages = ", ".join(
            f"{stage} {seconds:.2f}"
            for stage, seconds in (obj.timings or {}).items()
            if isinstance(seconds, int | float)
        )
        return presenters.refreshable(f"doc-{obj.pk}-timings", stages or "–")

    @admin.display(description="task runs")
    def task_runs(self, obj: Document) -> SafeString:
        return presenters.refreshable(
            f"doc-{obj.pk}-runs", runs.task_runs_table(selectors.document_task_runs(obj))
        )

    @admin.display(description="chunks")
    def chunks_preview(self, obj: Document) -> SafeString:
        chunks = selectors.document_chunks_preview(obj, limit=CHUNK_PREVIEW)
        if not chunks:
            return presenters.refreshable(f"doc-{obj.pk}-preview", "No chunks.")
        url = reverse("admin:documents_document_chunks", args=[obj.pk])
        rest = obj.chunk_count - len(chunks)
        more = format_html(
            '<p><a class="fca-browse-chunks" href="{}">{}</a></p>',
            url,
            f"Browse all {obj.chunk_count} chunks, page by page"
            + (f" ({rest} more)" if rest > 0 else ""),
        )
        return presenters.refreshable(
            f"doc-{obj.pk}-preview",
            format_html("{}{}", presenters.chunks_preview_table(chunks), more),
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        document = self.get_object(request, object_id)
        if document is not None:
            extra_context = {
                **(extra_context or {}),
                "status_panel": presenters.live_status(
                    document,
                    variant="panel",
                    can_reingest=self.has_change_permission(request, document),
                    stuck_after=selectors.stuck_after(),
                ),
                "chunks_url": reverse("admin:documents_document_chunks", args=[document.pk]),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- permissions: documents are created by upload, not by the add form -------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_upload_permission(self, request: HttpRequest) -> bool:
        """Uploading creates documents: it needs the add permission on the model."""
        return request.user.has_perm("documents.add_document")

    # --- deletion: through the service, which ends a running ingestion rather than waiting ---

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        services.document_delete(document_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document_id in queryset.values_list("pk", flat=True):
            services.document_delete(document_id=document_id)

    # --- reingest ----------------------------------------------------------------------------

    @admin.action(description="Reingest selected documents", permissions=["change"])
    def reingest(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        try:
            queued = services.document_ingest_enqueue(
                document_ids=ids, force=True, stuck_after=selectors.stuck_after()
            )
        except BrokerError:
            logger.exception("enqueue failed: broker unreachable")
            admin_views.broker_down(request)
            return
        skipped = len(ids) - len(queued)
        self.message_user(request, f"Queued {len(queued)} document(s) for ingestion.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} document(s) skipped: already queued or processing (not stuck).",
                level=messages.WARNING,
            )

    # --- the admin's own pages ---------------------------------------------------------------

    def get_urls(self) -> list[Any]:
        def view(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(partial(function, self))

        custom = [
            path("upload/", view(admin_views.upload_view), name="documents_document_upload"),
            path(
                "search/",
                self.admin_site.admin_view(self.search_view),
                name="documents_document_search",
            ),
            path("progress/", view(admin_views.progress_view), name="documents_document_progress"),
            path(
                "requeue-stuck/",
                view(admin_views.requeue_stuck_view),
                name="documents_document_requeue_stuck",
            ),
        ]
        per_document = {
            "reingest": admin_views.reingest_view,
            "chunks": admin_views.chunks_view,
            "file": admin_views.file_view,
        }
        custom += [
            path(f"<path:object_id>/{name}/", view(function), name=f"documents_document_{name}")
            for name, function in per_document.items()
        ]
        return custom + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {**(extra_context or {}), "can_upload": self.has_upload_permission(request)}
        return super().changelist_view(request, extra_context)

    def search_view(self, request: HttpRequest) -> HttpResponse:
        """Search the chunks: hits with their document, pages, score and highlighted snippet."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        form = SearchForm(request.GET or None)
        hits: list[dict] | None = None
        if form.is_valid():
            query = form.cleaned_data["q"]
            hits = ingestion.search(query, k=form.cleaned_data["k"], mode=form.cleaned_data["mode"])
            for hit in hits:
                hit["url"] = reverse("admin:documents_document_change", args=[hit["document_id"]])
                hit["chunks_url"] = (
                    reverse("admin:documents_document_chunks", args=[hit["document_id"]])
                    + f"?pdf_page={hit['page_start']}"
                )
                hit["snippet"] = highlight(hit["text"], query)
                hit["ocr_label"] = presenters.ocr_label(hit["ocr"], hit["ocr_confidence"])
        context = admin_views.admin_context(
            self, request, title="Search documents", form=form, hits=hits
        )
        return TemplateResponse(request, "admin/documents/document/search.html", context)


admin.site.unregister(TaskResult)


@admin.register(TaskResult)
class IngestTaskResultAdmin(TaskResultAdmin):
    """django-celery-results' admin, with a link from each ingestion run to its document and
    its outcome in words."""

    list_display = (*TaskResultAdmin.list_display, "document_link")

    class Media:
        css = {"all": ("documents/admin.css",)}

    fieldsets = (
        (None, {"fields": ("document_link", "duration", "outcome")}),
        *TaskResultAdmin.fieldsets,
    )

    def get_readonly_fields(self, request: HttpRequest, obj: TaskResult | None = None) -> list:
        return [*super().get_readonly_fields(request, obj), "document_link", "duration", "outcome"]

    @admin.display(description="document")
    def document_link(self, obj: TaskResult) -> str:
        document_id = selectors.task_document_id(obj)
        if document_id is None:
            return "-"
        url = reverse("admin:documents_document_change", args=[document_id])
        document = selectors.documents_by_ids([document_id]).first()
        if document is None:
            return f"document {document_id} (deleted)"
        return format_html(
            '<a class="fca-document-link" href="{}">{}</a> {}',
            url,
            document.title,
            presenters.status_badge(document),
        )

    @admin.display(description="duration")
    def duration(self, obj: TaskResult) -> str:
        seconds = runs.run_seconds(obj)
        return "-" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description="outcome")
    def outcome(self, obj: TaskResult) -> SafeString:
        return runs.run_outcome(obj)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    """Chunks are written by ingestion only: browse them, never edit them."""

    list_display = ("document", "ordinal", "pages", "token_count", "source", "text_start")
    list_filter = ("embedder", "ocr")
    list_select_related = ("document",)
    search_fields = ("text",)
    ordering = ("document", "ordinal")
    # The text is shown as an excerpt (a chunk may hold megabytes), the embedding not at all.
    fields = readonly_fields = (
        "document",
        "ordinal",
        "page_start",
        "page_end",
        "token_count",
        "embedder",
        "source",
        "text_excerpt",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chunk]:
        return super().get_queryset(request).defer("embedding")

    @admin.display(description="pages", ordering="page_start")
    def pages(self, obj: Chunk) -> str:
        return presenters.pages_label(obj.page_start, obj.page_end)

    @admin.display(description="source", ordering="ocr")
    def source(self, obj: Chunk) -> str:
        return presenters.ocr_label(obj.ocr, obj.ocr_confidence) or "text layer"

    @admin.display(description="text")
    def text_start(self, obj: Chunk) -> str:
        return presenters.shorten(obj.text, 160)

    @admin.display(description="text")
    def text_excerpt(self, obj: Chunk) -> str:
        return excerpt(obj.text)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Chunk | None = None) -> bool:
        return False
