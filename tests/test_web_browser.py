"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright through
the DevTools protocol; Playwright downloads no browser of its own), against a real server with
a token: log in with ?token=, see the queues, retry a dead job, and see a job whose args hold
a <script> shown as text; without a token: pause and purge queues whose names hold '/' and '..'
(only they are acted on), and see the database go away and come back. Screenshots are kept in
$JOOBQ_TEST_ARTIFACTS (default: a joobq-test-artifacts folder in the temporary directory)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from joobq_sql import JobStatus, JoobQ, NewJob
from tests.conftest import libpq_url
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


def test_pause_and_purge_act_only_on_a_queue_named_with_slashes_in_a_real_browser(
    web_app: JoobQ,
    serve: Callable[..., httpx.Client],
    browser_page: tuple[object, list[str]],
    artifacts: Path,
) -> None:
    """A browser resolves '..' segments before it sends a request: a button whose URL held
    x/../victim would act on the queue victim. Each name must travel as one encoded segment."""
    from playwright.sync_api import Page, expect

    page, dialogs = browser_page
    assert isinstance(page, Page)
    names = ["a", "b", "a/b", "victim", "x/../victim"]
    hostile = ["x/../victim", "a/b"]
    for name in names:
        web_app.store.enqueue_jobs(
            [NewJob.from_job(WebEmail(to=f"{i}@example.com"), queue=name) for i in range(2)]
        )
        fail_queue(web_app, name)
    base = str(serve(web_app).base_url).rstrip("/")
    flash = page.locator("#flash")

    def dead(name: str) -> int:
        return len(web_app.store.search_jobs(queue=name, status=JobStatus.DEAD))

    page.goto(f"{base}/")
    for done, name in enumerate(hostile, 1):
        row = page.locator(f'#queues tr[data-queue="{name}"]')
        page.evaluate("document.getElementById('flash').textContent = ''")
        row.get_by_role("button", name="Pause").click()
        expect(flash).to_have_text("Pause: done")  # the answer came: the write is committed
        assert web_app.store.paused_queues() == set(hostile[:done])
        expect(row.locator("td").nth(9)).to_have_text("paused")  # the refreshed row
    page.screenshot(path=str(artifacts / "dashboard-slash-queues-paused.png"), full_page=True)

    page.goto(f"{base}/dead")
    for name in hostile:
        block = page.locator(f'.dead-queue[data-queue="{name}"]')
        expect(block).to_have_count(1)
        page.evaluate("document.getElementById('flash').textContent = ''")
        block.get_by_role("button", name="Purge").click()
        expect(flash).to_have_text("Purge: done")
        assert dead(name) == 0
        expect(block).to_have_count(0)  # gone from the refreshed list
    assert {name: dead(name) for name in names} == {
        "a": 2,
        "b": 2,
        "a/b": 0,
        "victim": 2,
        "x/../victim": 0,
    }
    assert dialogs == [f"confirm: Delete every dead job of {name} for good?" for name in hostile]


def test_the_dashboard_says_the_database_is_unreachable_and_recovers_in_a_real_browser(
    web_app: JoobQ,
    serve: Callable[..., httpx.Client],
    database_url: str,
    browser_page: tuple[object, list[str]],
    artifacts: Path,
) -> None:
    """The page's own refresh (its clock run forward by Playwright, not waited for) shows the
    503 page while the database refuses connections, and the dashboard again once it takes
    them. (The database is made unreachable as a stopped server would be, cheaply: its
    sessions are terminated and new ones refused; tests/test_hostile_web.py stops a server.)"""
    from playwright.sync_api import Page, expect

    page, _dialogs = browser_page
    assert isinstance(page, Page)
    WebEmail.enqueue(to="a@example.com")
    base = str(serve(web_app).base_url).rstrip("/")
    name = make_url(database_url).database

    def connections(allowed: bool) -> None:
        with psycopg.connect(libpq_url(database_url, "postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(name), sql.Literal(allowed)
                )
            )
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )

    page.clock.install()
    page.goto(f"{base}/")
    row = page.locator(f'#queues tr[data-queue="{MAIL}"]')
    heading = page.locator("#content h1")
    expect(row).to_be_visible()
    connections(False)
    try:
        page.clock.run_for(6000)  # one refresh
        expect(heading).to_have_text("The database is unreachable")
        expect(page.locator("#unavailable-reason")).to_contain_text("the database is unreachable: ")
        page.screenshot(path=str(artifacts / "dashboard-database-down.png"))
    finally:
        connections(True)
    page.clock.run_for(6000)
    expect(row).to_be_visible()
    expect(heading).to_have_text("Queues")
