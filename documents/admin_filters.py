"""Admin list filters for documents: the ones a selector flags (stuck, stale)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from documents import selectors
from documents.models import Document


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
        return selectors.stuck_documents(older_than=selectors.stuck_after())


class StaleFilter(FlagFilter):
    """Ready documents embedded by another model than the one configured now."""

    title = "embedding"
    parameter_name = "stale"
    label = "Stale (embedded by another model)"

    def flagged(self) -> QuerySet[Document]:
        return selectors.stale_documents()
