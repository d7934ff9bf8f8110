"""The figures on the admin's home page: documents by status, what is running, what is stuck,
the last failures, and pages ingested per hour over the last day."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import urlencode

from documents import charts, presenters, selectors
from documents.models import Document

CHART_HOURS = 24
ACTIVE_SHOWN = 8
STUCK_SHOWN = 5
FAILURES_SHOWN = 5


def changelist_url(**filters: str) -> str:
    """The document list, filtered as given."""
    url = reverse("admin:documents_document_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    """Everything the dashboard template shows, for this user (reingest buttons need the change
    permission)."""
    can_reingest = request.user.has_perm("documents.change_document")
    stuck_after = selectors.stuck_after()

    def live(document: Document) -> str:
        return presenters.live_status(document, can_reingest=can_reingest, stuck_after=stuck_after)

    counts = selectors.status_counts()
    tiles = [
        {
            "status": status.value,
            "label": status.label,
            "count": counts[status.value],
            "url": changelist_url(status__exact=status.value),
        }
        for status in Document.Status
    ]
    stuck_documents = selectors.stuck_documents(older_than=stuck_after).order_by("updated_at")
    series = selectors.pages_ingested_per_hour(hours=CHART_HOURS)
    return {
        "show_dashboard": True,
        "total": sum(counts.values()),
        "tiles": tiles,
        "all_url": changelist_url(),
        "active": [(d, live(d)) for d in selectors.active_documents(limit=ACTIVE_SHOWN)],
        "active_total": counts[Document.Status.QUEUED] + counts[Document.Status.PROCESSING],
        "stuck": [(d, live(d)) for d in stuck_documents[:STUCK_SHOWN]],
        "stuck_total": stuck_documents.count(),
        "stuck_url": changelist_url(stuck="yes"),
        "stuck_after_minutes": round(stuck_after.total_seconds() / 60),
        "failures": [(d, live(d)) for d in selectors.recent_failures(limit=FAILURES_SHOWN)],
        "failed_url": changelist_url(status__exact=Document.Status.FAILED),
        "pages_last_day": sum(pages for _, pages in series),
        "chart": charts.hourly_bar_chart(
            series, title=f"Pages ingested per hour, last {CHART_HOURS} hours"
        ),
        "can_reingest": can_reingest,
        "upload_url": reverse("admin:documents_document_upload")
        if request.user.has_perm("documents.add_document")
        else "",
    }
