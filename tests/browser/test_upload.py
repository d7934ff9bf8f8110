"""Uploading in the browser: many PDFs at once (dropped or picked), per-file outcomes, and live
progress to ready or failed without reloading."""

from __future__ import annotations

import base64
import re

import pytest
from playwright.sync_api import expect

from documents.models import Document
from tests.browser.conftest import INGEST_TIMEOUT_MS, seen_statuses, watch_statuses

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GOOD = ("text-pdflatex-4pages.pdf", "text-latex-two-column-3pages.pdf")
BROKEN = "broken-pages-object-poppler-reads-4pages.pdf"  # neither pypdf nor PDFium reads it


def drop_file(page, selector: str, path) -> None:
    """Drop a file on an element as a person dragging it from their desktop would."""
    transfer = page.evaluate_handle(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "application/pdf"}));
            return transfer;
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode()],
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def outcome_row(page, file_name: str):
    return page.locator(f'tr.fca-outcome[data-fca-file="{file_name}"]')


def test_three_pdfs_uploaded_reach_ready_and_failed_without_reloading(
    logged_in, corpus, worker_paused, screenshot
):
    page = logged_in
    page.get_by_role("link", name="Documents", exact=True).first.click()
    page.get_by_role("link", name="Upload PDFs").click()
    expect(page.locator("#fca-dropzone")).to_contain_text("Drop PDF files here")
    # The upload script (deferred) marks the page once its handlers are bound: a drop before
    # that would go to the browser, not to the list.
    expect(page.locator("html")).to_have_class(re.compile(r"\bfca-js\b"))

    # One file dropped on the zone, two more picked with the file chooser: one list of three.
    drop_file(page, "#fca-dropzone", corpus[GOOD[0]].path)
    page.locator("#id_files").set_input_files([corpus[GOOD[1]].path, corpus[BROKEN].path])
    expect(page.locator("#fca-selected li")).to_have_count(3)
    expect(page.locator("#fca-upload-status")).to_contain_text("3 files")

    # The worker waits until the outcome page shows every file queued, so the changes that
    # follow are seen to happen on the page.
    with worker_paused():
        page.get_by_role("button", name="Upload and ingest").click()
        expect(page).to_have_url(re.compile(r"/upload/\?batch=\w+$"))
        expect(page.locator("#fca-upload-results h2")).to_contain_text("3 files: 3 queued")
        for name in (*GOOD, BROKEN):
            expect(outcome_row(page, name).locator(".fca-verdict")).to_have_text("Queued")
            expect(outcome_row(page, name).locator(".fca-status")).to_have_text("Queued")
        watch_statuses(page)

    for name in GOOD:
        expect(outcome_row(page, name).locator(".fca-status")).to_have_text(
            "Ready", timeout=INGEST_TIMEOUT_MS
        )
    broken = outcome_row(page, BROKEN)
    expect(broken.locator(".fca-status")).to_have_text("Failed", timeout=INGEST_TIMEOUT_MS)
    expect(broken.locator(".fca-error-code")).to_have_text("corrupt")
    expect(broken.get_by_role("button", name="Reingest")).to_be_visible()
    # Pages and chunks of the good ones were refreshed in place too.
    expect(outcome_row(page, GOOD[0]).locator("td").nth(5)).to_have_text(
        str(corpus[GOOD[0]].page_count)
    )

    # Each changed in place, from queued to its final status, without a reload.
    seen = seen_statuses(page)
    documents = list(Document.objects.all())
    assert len(documents) == 3
    for document in documents:
        statuses = seen[str(document.pk)]
        assert statuses[0] == "queued" and statuses[-1] == document.status, statuses
    screenshot()

    # The document list shows the same, with the failure's code and message.
    page.get_by_role("link", name="All documents").click()
    failed = page.locator("#result_list tr", has_text=BROKEN.removesuffix(".pdf"))
    expect(failed.locator(".fca-status")).to_have_text("Failed")
    expect(failed.locator(".fca-error-code")).to_have_text("corrupt")
    expect(failed.locator(".fca-error-message")).not_to_be_empty()
    screenshot("list")


def test_upload_says_which_files_were_present_or_rejected_and_why(
    logged_in, ingested, corpus, screenshot
):
    (present,) = ingested(GOOD[1])
    page = logged_in
    page.goto("/admin/documents/document/upload/")
    page.locator("#id_files").set_input_files(
        [corpus[GOOD[1]].path, corpus["broken-empty-0bytes.pdf"].path]
    )
    expect(page.locator("#fca-selected")).to_contain_text("empty: will be rejected")
    page.get_by_role("button", name="Upload and ingest").click()

    expect(page.locator("#fca-upload-results h2")).to_contain_text(
        "2 files: 1 already present, 1 rejected"
    )
    rejected = outcome_row(page, "broken-empty-0bytes.pdf")
    expect(rejected.locator(".fca-verdict")).to_have_text("Rejected")
    expect(rejected.locator(".fca-reason")).to_have_text("The file is empty.")
    row = outcome_row(page, GOOD[1])
    expect(row.locator(".fca-verdict")).to_have_text("Already present")
    expect(row.locator(".fca-status")).to_have_text("Ready")
    screenshot()

    row.locator("a.fca-document-link").click()
    expect(page).to_have_url(re.compile(rf"/document/{present.pk}/change/$"))
    expect(page.locator("#fca-status-panel .fca-status")).to_have_text("Ready")
    assert Document.objects.count() == 1
