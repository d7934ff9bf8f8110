"""Browser tests: Debian's Chromium driven by Playwright against the live development server,
a real worker, real Redis and the test database. Each test saves a screenshot."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_BROKER_URL, TEST_QUEUE

CHROMIUM = Path(os.environ.get("FCA_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT_DIR = Path(os.environ.get("FCA_SCREENSHOT_DIR", ROOT / ".artifacts" / "screenshots"))
# Generous for a loaded 2-core machine; a passing run waits far less.
TIMEOUT_MS = 20_000
INGEST_TIMEOUT_MS = 90_000
ADMIN_USER = "browser-admin"
ADMIN_PASSWORD = "pw-browser-1"  # noqa: S105 - a test account in the throwaway test database
saved_screenshots: list[Path] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    # The page fixture reads this to save a screenshot of a failure.
    setattr(item, f"report_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if saved_screenshots:
        terminalreporter.section("browser screenshots")
        for path in saved_screenshots:
            terminalreporter.write_line(str(path))


@pytest.fixture(scope="package")
def chromium_path() -> Path:
    """Debian's Chromium (scripts/setup.sh installs it); Playwright never downloads a browser."""
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM}: scripts/setup.sh installs it with apt-get"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="package")
def dev_server(
    django_db_setup, django_db_blocker, celery_worker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator:
    """``manage.py runserver`` on the test database, sending tasks to the session's worker."""
    from tests.live_server import start_server, stop_server

    with django_db_blocker.unblock():
        server = start_server(
            tmp_path_factory.mktemp("server-logs"), broker_url=TEST_BROKER_URL, queue=TEST_QUEUE
        )
    yield server
    stop_server(server)


@pytest.fixture(scope="package")
def browser(chromium_path: Path, dev_server, django_db_setup) -> Iterator:
    """One headless Chromium for the browser tests.

    Playwright's synchronous API keeps an asyncio loop running in this thread while it is
    started, and Django refuses ORM calls under a running loop. The tests' own ORM calls are
    plain synchronous code between browser steps, so they are allowed for as long as Playwright
    runs; package scope stops it (and the allowance) before any other test package runs.
    """
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        patch.setenv("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(chromium_path),
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            yield chromium
            chromium.close()


def screenshot_path(test_name: str, suffix: str = "") -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "-", test_name).strip("-")
    return SCREENSHOT_DIR / f"{safe}{suffix}.png"


@pytest.fixture
def page(browser, dev_server, request: pytest.FixtureRequest) -> Iterator:
    """A fresh browser context and page on the live server; a screenshot is saved if the test
    fails."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(base_url=dev_server.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        path = screenshot_path(request.node.name, "-failed")
        tab.screenshot(path=str(path), full_page=True)
        saved_screenshots.append(path)
    context.close()


@pytest.fixture
def screenshot(page, request: pytest.FixtureRequest) -> Callable[..., Path]:
    """Save the page as ``<screenshot dir>/<test name>[-<step>].png`` and list it at the end of
    the run."""

    def save(step: str = "") -> Path:
        path = screenshot_path(request.node.name, f"-{step}" if step else "")
        page.screenshot(path=str(path), full_page=True)
        saved_screenshots.append(path)
        return path

    return save


@pytest.fixture
def admin_user(transactional_db, django_user_model):
    """A superuser the tests log in as through the login form."""
    return django_user_model.objects.create_superuser(
        ADMIN_USER, "browser@example.com", ADMIN_PASSWORD
    )


@pytest.fixture
def logged_in(page, admin_user):
    """The page, logged in through the admin's login form."""
    log_in(page)
    return page


def log_in(page) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#fca-dashboard")).to_be_visible()


@pytest.fixture
def worker_paused(celery_worker) -> Callable:
    """``with worker_paused():`` the session's worker takes no message, so the page can be seen
    with documents queued before they change under the test's eyes."""
    from tests.workers import consuming_paused

    return partial(consuming_paused, celery_worker, TEST_QUEUE)


@pytest.fixture
def ingested(transactional_db, celery_worker, corpus, wait_for_documents) -> Callable[..., list]:
    """Take corpus files in through the intake (as the admin upload does) and wait until the
    worker has finished them: the starting point of tests about what comes after."""
    from documents.intake import IntakeFile, intake_files

    def ingest(*names: str) -> list:
        report = intake_files(
            files=[IntakeFile(name=name, source=corpus[name].path) for name in names]
        )
        return wait_for_documents([outcome.document_id for outcome in report.outcomes])

    return ingest


def watch_statuses(page) -> None:
    """Record, in the page, every status a live element takes. A reload would wipe the record,
    so finding it later proves the page changed in place."""
    page.wait_for_load_state()
    page.evaluate(
        """() => {
            window.fcaSeen = {};
            const note = () => document.querySelectorAll("[data-fca-doc]").forEach((el) => {
                const seen = (window.fcaSeen[el.dataset.fcaDoc] ||= []);
                if (seen[seen.length - 1] !== el.dataset.fcaStatus) seen.push(el.dataset.fcaStatus);
            });
            note();
            new MutationObserver(note).observe(document.body, {subtree: true, childList: true});
        }"""
    )


def seen_statuses(page) -> dict[str, list[str]]:
    """What :func:`watch_statuses` recorded: document id -> statuses in the order shown."""
    seen = page.evaluate("() => window.fcaSeen")
    assert seen is not None, "the page was reloaded: the status record is gone"
    return seen
