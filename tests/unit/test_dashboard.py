"""The dashboard on the admin's home page: counts by status, what is stuck, the last failures,
pages ingested per hour (and its SVG chart)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult

from documents import charts, selectors
from documents.models import Document
from documents.selectors import ingest_task_args

pytestmark = pytest.mark.django_db

Status = Document.Status


def make_document(title: str, status: str, **fields) -> Document:
    return Document.objects.create(
        title=title, status=status, sha256=uuid.uuid4().hex * 2, size_bytes=10, **fields
    )


def make_success(pages: int | None, *, done: datetime, status: str = "SUCCESS", **result) -> None:
    payload = {"status": "success", **result}
    if pages is not None:
        payload["pages"] = pages
    run = TaskResult.objects.create(
        task_id=str(uuid.uuid4()),
        task_name="ingest_pdf_task",
        task_args=ingest_task_args(1),
        status=status,
        result=json.dumps(payload),
    )
    TaskResult.objects.filter(pk=run.pk).update(date_done=done)


def test_status_counts_cover_every_status():
    make_document("a", Status.READY)
    make_document("b", Status.READY)
    make_document("c", Status.FAILED)
    assert selectors.status_counts() == {"queued": 0, "processing": 0, "ready": 2, "failed": 1}


def test_pages_per_hour_sums_successful_runs_by_hour_over_the_last_day():
    now = datetime(2026, 3, 10, 15, 40, tzinfo=UTC)
    make_success(10, done=datetime(2026, 3, 10, 15, 5, tzinfo=UTC))
    make_success(5, done=datetime(2026, 3, 10, 15, 30, tzinfo=UTC))
    make_success(7, done=datetime(2026, 3, 10, 9, 59, tzinfo=UTC))
    make_success(100, done=datetime(2026, 3, 9, 15, 59, tzinfo=UTC))  # before the window
    make_success(3, done=datetime(2026, 3, 10, 12, 0, tzinfo=UTC), status="FAILURE")
    make_success(None, done=datetime(2026, 3, 10, 12, 0, tzinfo=UTC))  # skipped run: no pages

    series = selectors.pages_ingested_per_hour(hours=24, now=now)

    assert len(series) == 24
    assert series[0][0] == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
    assert series[-1][0] == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
    by_hour = {hour.hour: pages for hour, pages in series}
    assert by_hour[15] == 15 and by_hour[9] == 7 and by_hour[12] == 0
    assert sum(pages for _, pages in series) == 22


def test_pages_per_hour_follows_the_current_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"  # UTC+1 in March
    now = datetime(2026, 3, 10, 15, 40, tzinfo=UTC)
    make_success(4, done=datetime(2026, 3, 10, 15, 5, tzinfo=UTC))
    with timezone.override("Europe/Paris"):
        series = selectors.pages_ingested_per_hour(hours=24, now=now)
    last_hour, pages = series[-1]
    assert (last_hour.hour, pages) == (16, 4)


def test_recent_failures_are_newest_first():
    older = make_document("older", Status.FAILED, error_code="corrupt")
    newer = make_document("newer", Status.FAILED, error_code="encrypted")
    Document.objects.filter(pk=older.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    make_document("fine", Status.READY)
    assert [d.title for d in selectors.recent_failures(limit=5)] == [newer.title, older.title]


def section(html: str, element_id: str) -> str:
    """The HTML of the dashboard section with this id (up to the next section)."""
    start = html.index(f'id="{element_id}"')
    following = re.search(r'id="fca-(active|stuck|failures)"', html[start + 10 :])
    return html[start : start + 10 + following.start()] if following else html[start:]


def test_admin_index_shows_the_dashboard(staff_client, settings):
    settings.RAG_STUCK_AFTER_SECONDS = 600
    make_document("ready one", Status.READY)
    make_document("fresh arrival", Status.QUEUED, last_task_id="t")
    lost = make_document("lost one", Status.QUEUED, last_task_id="gone")
    Document.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(hours=3))
    running = make_document(
        "running",
        Status.PROCESSING,
        page_count=8,
        pages_done=2,
        processing_started_at=timezone.now(),
    )
    make_document(
        "broken scan", Status.FAILED, error_code="no_text", error_message="No text on any page."
    )
    make_success(42, done=timezone.now())

    html = staff_client.get(reverse("admin:index")).content.decode()

    tiles = dict(re.findall(r'data-fca-tile="(\w+)">\s*<span class="fca-count">(\d+)<', html))
    assert tiles == {"queued": "2", "processing": "1", "ready": "1", "failed": "1", "total": "5"}
    assert reverse("admin:documents_document_changelist") + "?status__exact=failed" in html

    active = section(html, "fca-active")
    assert "running" in active and "2 / 8 pages" in active
    assert f'data-fca-doc="{running.pk}"' in active

    stuck = section(html, "fca-stuck")
    assert "lost one" in stuck and "fresh arrival" not in stuck
    assert reverse("admin:documents_document_requeue_stuck") in stuck

    failures = section(html, "fca-failures")
    assert "broken scan" in failures and "no_text" in failures
    assert "No text on any page." in failures
    assert "fca-reingest" in failures

    start = html.index('<svg class="fca-chart"')
    chart = html[start : html.index("</svg>", start)]
    assert chart.count('class="fca-bar"') == 24
    assert "42 pages" in chart
    assert "42 pages in the last 24 hours" in html


def test_users_who_may_not_see_documents_get_no_dashboard(client, django_user_model):
    user = django_user_model.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert "fca-dashboard" not in html


# --- the chart itself -----------------------------------------------------------------------


def hours(values: list[int]) -> list[tuple[datetime, int]]:
    start = datetime(2026, 1, 1, 0, tzinfo=UTC)
    return [(start + timedelta(hours=i), v) for i, v in enumerate(values)]


def bar_heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'class="fca-bar"[^>]* height="([\d.]+)"', svg)]


def test_chart_bars_are_proportional_to_the_values():
    svg = str(charts.hourly_bar_chart(hours([0, 50, 100, 25]), title="t"))
    heights = bar_heights(svg)
    assert heights[0] == 0
    assert heights[2] == pytest.approx(2 * heights[1]) == pytest.approx(4 * heights[3])
    assert "01:00–02:00: 50 pages" in svg  # each bar names its hour and value
    assert 'role="img"' in svg and "175 pages in all" in svg


def test_chart_of_an_idle_day_says_so():
    svg = str(charts.hourly_bar_chart(hours([0] * 24), title="t"))
    assert "Nothing ingested in this period" in svg
    assert set(bar_heights(svg)) == {0.0}


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (42, 50), (101, 200)]
)
def test_axis_ends_on_a_round_number(value, ceiling):
    assert charts.nice_ceiling(value) == ceiling
