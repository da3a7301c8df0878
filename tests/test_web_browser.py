"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright through
the DevTools protocol; Playwright downloads no browser of its own), against a real server with
a token: log in with ?token=, see the queues, retry a dead job, and see a job whose args hold
a <script> shown as text. Screenshots are kept in $JOOBQ_TEST_ARTIFACTS (default: a
joobq-test-artifacts folder in the temporary directory)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from joobq_sql import JobStatus, JoobQ
from tests.test_web_support import MAIL, REPORTS, WebEmail, WebReport, fail_queue, status_of

pytest_plugins = ["tests.test_web_support"]

TOKEN = "browser-token"
SCRIPT = "<script>alert(1)</script>"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    configured = os.environ.get("JOOBQ_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def artifacts() -> Path:
    folder = Path(
        os.environ.get("JOOBQ_TEST_ARTIFACTS")
        or Path(tempfile.gettempdir()) / "joobq-test-artifacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[tuple[object, list[str]]]:
    """A fresh Chromium page, and the list of dialogs (alerts, confirms) it opened."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            dialogs: list[str] = []

            def on_dialog(dialog: object) -> None:
                dialogs.append(f"{dialog.type}: {dialog.message}")  # type: ignore[attr-defined]
                dialog.accept()  # type: ignore[attr-defined]

            page.on("dialog", on_dialog)
            yield page, dialogs
        finally:
            browser.close()


def test_the_dashboard_retries_a_dead_job_in_a_real_browser(
    web_app: JoobQ,
    serve: Callable[..., httpx.Client],
    browser_page: tuple[object, list[str]],
    artifacts: Path,
) -> None:
    from playwright.sync_api import Page, expect

    page, dialogs = browser_page
    assert isinstance(page, Page)
    for i in range(3):
        WebEmail.enqueue(to=f"user{i}@example.com")
    WebEmail.delay(3600, to="later@example.com")
    WebReport.enqueue(name="retrying")
    fail_queue(web_app, REPORTS, retry_in=3600)
    WebReport.enqueue(name="broken")
    script_job = WebReport.enqueue(name=SCRIPT)
    dead = fail_queue(web_app, REPORTS, ValueError("the report is broken"))
    target = next(j for j in dead if j != script_job)
    base = str(serve(web_app, token=TOKEN).base_url).rstrip("/")

    page.goto(f"{base}/?token={TOKEN}")
    assert page.url == f"{base}/"  # the token left the address; the cookie carries the session
    queues = page.locator("#queues")
    expect(queues).to_be_visible()
    mail_row = queues.locator(f'tr[data-queue="{MAIL}"]')
    expect(mail_row.locator("td").nth(1)).to_have_text("3")  # waiting
    expect(queues.locator(f'tr[data-queue="{REPORTS}"] td').nth(5)).to_have_text("2")  # dead
    page.screenshot(path=str(artifacts / "dashboard-overview.png"), full_page=True)

    page.goto(f"{base}/dead")
    row = page.locator(f'#dead-jobs tr[data-jid="{target}"]')
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Retry").click()
    expect(page.locator("#flash")).to_have_text("Retry: done")
    expect(row).to_have_count(0)  # it left the dead list
    expect(page.locator(f'#dead-jobs tr[data-jid="{script_job}"]')).to_have_count(1)
    page.screenshot(path=str(artifacts / "dashboard-dead-letter.png"), full_page=True)
    assert status_of(web_app, target) is JobStatus.ENQUEUED

    page.goto(f"{base}/jobs/{script_job}")
    expect(page.locator("#args")).to_contain_text(SCRIPT)  # shown as text
    injected = page.evaluate(
        "Array.from(document.scripts).filter(s => s.textContent.includes('alert(1)')).length"
    )
    assert injected == 0
    page.wait_for_timeout(300)
    assert dialogs == []  # no alert ran, and no confirm was needed for a retry
    page.screenshot(path=str(artifacts / "dashboard-job-with-script-args.png"), full_page=True)
