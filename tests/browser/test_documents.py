"""A document in the browser: its chunks page by page, its task runs and back, reingesting it
(the list's action and the one-click button), and the dashboard."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from documents.models import Document
from tests.browser.conftest import INGEST_TIMEOUT_MS, seen_statuses, watch_statuses

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FOUR_PAGES = "text-pdflatex-4pages.pdf"
BROKEN = "broken-pages-object-poppler-reads-4pages.pdf"  # neither pypdf nor PDFium reads it


def open_document(page, title: str) -> None:
    page.goto("/admin/documents/document/")
    page.locator("#result_list").get_by_role("link", name=title, exact=True).click()
    expect(page.locator("#fca-status-panel")).to_be_visible()


def test_a_documents_chunks_page_by_page_and_its_task_result(logged_in, ingested, screenshot):
    (document,) = ingested(FOUR_PAGES)
    assert document.chunk_count > 10, "needs more than one page of 10 chunks"
    page = logged_in
    open_document(page, document.title)
    panel = page.locator("#fca-status-panel")
    expect(panel.locator(".fca-status")).to_have_text("Ready")
    expect(panel).to_contain_text(f"{document.page_count} pages")

    # Chunks: page by page, each with the PDF pages it comes from.
    page.locator("a.fca-browse-chunks").click()
    expect(page.locator("h1")).to_contain_text("Chunks of")
    page.locator("select[name=per_page]").select_option("10")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#fca-chunk-count")).to_contain_text(
        f"Chunks 1–10 of {document.chunk_count}"
    )
    expect(page.locator("tr.fca-chunk")).to_have_count(10)
    expect(page.locator("tr.fca-chunk").first.locator(".fca-chunk-pages")).to_have_text("p. 1")
    page.get_by_role("link", name="Next ›").click()
    expect(page.locator("#fca-chunk-count")).to_contain_text("Chunks 11–")
    expect(page.locator("tr.fca-chunk").first).to_have_attribute("id", "chunk-10")
    # A chunk's pages narrow the list to the chunks of that PDF page.
    last_pages = page.locator("tr.fca-chunk .fca-chunk-pages a").last
    pdf_page = re.search(r"\d+", last_pages.inner_text()).group(0)
    last_pages.click()
    expect(page.locator("input[name=pdf_page]")).to_have_value(pdf_page)
    for cell in page.locator("tr.fca-chunk .fca-chunk-pages").all():
        numbers = [int(n) for n in re.findall(r"\d+", cell.inner_text())]
        assert min(numbers) <= int(pdf_page) <= max(numbers)
    screenshot("chunks")

    # Its task run: newest first, with state, duration and worker; the result links back.
    page.get_by_role("link", name="Back to the document").click()
    runs = page.locator("table.fca-runs tr.fca-run")
    expect(runs).to_have_count(1)
    expect(runs.first.locator(".fca-state")).to_have_text("SUCCESS")
    produced = f"{document.page_count} pages, {document.chunk_count} chunks"
    expect(runs.first).to_contain_text(produced)
    expect(runs.first.locator("td").nth(3)).to_contain_text("@")  # the worker's node name
    runs.first.locator("td").first.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("Change task result")
    expect(page.locator(".field-outcome")).to_contain_text(f"{document.page_count} pages")
    screenshot("task-result")
    page.locator("a.fca-document-link").click()
    expect(page).to_have_url(re.compile(rf"/document/{document.pk}/change/$"))


def test_reingest_action_and_one_click_reingest_update_live(
    logged_in, ingested, worker_paused, screenshot
):
    good, broken = ingested(FOUR_PAGES, BROKEN)
    assert (good.status, broken.status) == (Document.Status.READY, Document.Status.FAILED)
    first_task = good.last_task_id
    page = logged_in

    # The list's action on the ready document: queued, then ready again, live.
    page.goto("/admin/documents/document/")
    row = page.locator("#result_list tr", has_text=good.title)
    with worker_paused():
        row.locator("input.action-select").check()
        page.locator("select[name=action]").select_option("reingest")
        page.get_by_role("button", name="Go").click()
        expect(page.locator(".messagelist")).to_contain_text("Queued 1 document(s) for ingestion.")
        expect(row.locator(".fca-status")).to_have_text("Queued")
        watch_statuses(page)
    expect(row.locator(".fca-status")).to_have_text("Ready", timeout=INGEST_TIMEOUT_MS)
    seen = seen_statuses(page)[str(good.pk)]
    assert seen[0] == "queued" and seen[-1] == "ready", seen
    good.refresh_from_db()
    assert good.last_task_id != first_task and good.status == Document.Status.READY
    screenshot("action")

    # One click on the failed document's page: queued again, and failed again, live.
    open_document(page, broken.title)
    panel = page.locator("#fca-status-panel")
    expect(panel.locator(".fca-error-code")).to_have_text("corrupt")
    expect(panel.locator(".fca-error-message")).to_contain_text("cannot be read")
    with worker_paused():
        panel.get_by_role("button", name="Reingest").click()
        expect(page.locator(".messagelist")).to_contain_text("is queued for ingestion")
        expect(panel.locator(".fca-status")).to_have_text("Queued")
        watch_statuses(page)
    expect(panel.locator(".fca-status")).to_have_text("Failed", timeout=INGEST_TIMEOUT_MS)
    seen = seen_statuses(page)[str(broken.pk)]
    assert seen[0] == "queued" and seen[-1] == "failed", seen
    # The new run appears in the task runs without a reload: two runs now, newest first.
    runs = page.locator("table.fca-runs tr.fca-run")
    expect(runs).to_have_count(2)
    expect(runs.first.locator(".fca-state")).to_have_text("FAILURE")
    screenshot("one-click")


def test_dashboard_counts_failures_and_chart(logged_in, ingested, screenshot):
    ingested(FOUR_PAGES, BROKEN)
    page = logged_in
    page.goto("/admin/")
    dashboard = page.locator("#fca-dashboard")
    expect(dashboard.locator('[data-fca-tile="ready"] .fca-count')).to_have_text("1")
    expect(dashboard.locator('[data-fca-tile="failed"] .fca-count')).to_have_text("1")
    expect(dashboard.locator("#fca-failures")).to_contain_text("corrupt")
    expect(dashboard.locator("#fca-chart")).to_contain_text("4 pages in the last 24 hours")
    expect(dashboard.locator("svg.fca-chart rect.fca-bar")).to_have_count(24)
    screenshot()
    dashboard.locator('[data-fca-tile="failed"]').click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)


def test_pages_done_of_total_update_on_the_list_and_the_document_page(logged_in, screenshot):
    """The test plays the worker's part, writing progress as the ingestion service does, so
    every step can be seen; the real worker's runs are in the upload and reingest tests."""
    document = Document.objects.create(
        title="long report",
        sha256="f" * 64,
        size_bytes=2_000_000,
        status=Document.Status.PROCESSING,
        processing_started_at=timezone.now(),
        last_task_id="t-1",
    )
    rows = Document.objects.filter(pk=document.pk)
    page = logged_in

    page.goto("/admin/documents/document/")
    watch_statuses(page)
    cell = page.locator("#result_list tr", has_text="long report").locator(".fca-live")
    expect(cell).to_contain_text("opening the PDF")
    rows.update(page_count=120, pages_done=0)
    expect(cell.locator(".fca-pages")).to_have_text("0 / 120 pages")
    rows.update(pages_done=48)
    expect(cell.locator(".fca-pages")).to_have_text("48 / 120 pages")
    expect(cell.locator("progress")).to_have_attribute("value", "48")
    screenshot("list")

    page.locator("#result_list").get_by_role("link", name="long report").click()
    watch_statuses(page)
    panel = page.locator("#fca-status-panel")
    expect(panel.locator(".fca-percent")).to_have_text("40%")
    rows.update(pages_done=90)
    expect(panel.locator(".fca-pages")).to_have_text("90 / 120 pages")
    expect(panel.locator(".fca-percent")).to_have_text("75%")
    screenshot("document")
    rows.update(
        status=Document.Status.READY,
        pages_done=120,
        chunk_count=300,
        ingested_at=timezone.now(),
    )
    expect(panel.locator(".fca-status")).to_have_text("Ready")
    expect(panel).to_contain_text("120 pages, 300 chunks")
    # The other fields of the page followed, without a reload.
    expect(page.locator(".field-chunks_display .readonly")).to_have_text("300")
    assert seen_statuses(page)[str(document.pk)] == ["processing", "ready"]
