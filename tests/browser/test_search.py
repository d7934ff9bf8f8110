"""Searching from the admin's home page and opening a hit, in the browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_search_from_the_home_page_and_open_a_hit(logged_in, ingested, screenshot):
    blind_text, columns = ingested("text-pdflatex-4pages.pdf", "text-latex-two-column-3pages.pdf")
    page = logged_in
    page.goto("/admin/")
    page.get_by_label("Search documents").fill("blind text alphabet")
    page.locator("#fca-search-box").get_by_role("button", name="Search").click()

    hits = page.locator("ol.fca-hits li.fca-hit")
    expect(hits.first).to_be_visible()
    first = hits.first
    expect(first.locator("a.fca-hit-link")).to_have_text(blind_text.title)
    expect(first.locator(".meta")).to_contain_text(re.compile(r"pp?\. \d"))
    expect(first.locator("mark").first).to_be_visible()  # the query's words are highlighted
    screenshot()

    first.locator("a.fca-hit-link").click()
    expect(page).to_have_url(re.compile(rf"/document/{blind_text.pk}/change/$"))
    expect(page.locator("#fca-status-panel .fca-status")).to_have_text("Ready")
