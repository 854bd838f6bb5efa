"""The web console in a real headless browser (chromium + chromium-driver through
selenium) against a real `jobd run` process and database: sign-in, the overview updating
as jobs complete, a filter, a job's detail with its error, a retry from the page that the
database then shows, a bulk cancel, a queue pause, the row view, the triggers pages, the
pages without JavaScript, and a cross-site POST refused. Every page is screenshotted into
`build/console/` (tests/acceptance/browser.py).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance import daemon_harness as h
from tests.acceptance.browser import chrome, page_errors, shot

db, port = h.db, h.port  # fixtures (see test_daemon.py)
pytestmark = pytest.mark.slow

TOKEN = "console-test-token-5f1d"
PAYMENTS = """
CREATE TABLE public.payments (id int PRIMARY KEY, state text NOT NULL DEFAULT 'due');
CREATE TABLE public.approvals (id int PRIMARY KEY);
"""
EXTRA = """
  payments:
    table: public.payments
    actions:
      charge: {python: "tests.acceptance.console_actions:charge"}
      paid: {update: {set: {state: paid}}}
    triggers:
      charge:
        action: charge
        where: "state = 'due'"
        scheduler_cron: false
        on_success: paid
        queue: default
"""


class Console:
    """A running daemon with a token, and helpers to drive its console."""

    def __init__(self, url: str, port: int, daemon: Any) -> None:
        self.db, self.port, self.daemon = url, port, daemon
        self.base = f"http://127.0.0.1:{port}/console"

    def sign_in(self, driver: Any) -> None:
        from selenium.webdriver.common.by import By

        driver.get(self.base + "/")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        h.wait_for(lambda: driver.current_url.rstrip("/") == self.base, what="the overview")

    def charge(self, *ids: int) -> list[int]:
        """Payments `ids` (due) and their jobs, run by the daemon until discarded."""
        for i in ids:
            h.sql(self.db, "INSERT INTO public.payments (id) VALUES ($1)", i)
        keys = json.dumps([{"id": i} for i in ids])
        rows = h.sql(
            self.db, "SELECT jobd.run_triggers('payments', 'charge', $1::jsonb) AS ids", keys
        )
        job_ids = list(rows[0]["ids"])
        h.wait_for(lambda: h.all_in(self.db, job_ids, "discarded"), what="the charges failed")
        return job_ids


@pytest.fixture
def console(db: str, port: int, tmp_path: Path) -> Iterator[Console]:
    """A daemon with a token whose `payments.charge` fails with a traceback until the
    payment is approved. A failed job's traceback is logged with its `job.discard` line
    (as designed); no other line may hold one."""
    h.sql(db, PAYMENTS)
    config = h.write_config(tmp_path / "jobd.yaml", db, port, token=TOKEN, extra=EXTRA)
    with h.DaemonProcess(config) as daemon:
        daemon.start()
        yield Console(db, port, daemon)
        assert daemon.stop() == 0
    job_errors = {json.dumps(e) for e in daemon.find("job.discard")}
    assert [t for t in daemon.tracebacks() if t not in job_errors] == [], daemon.log_tail()


def text_of(driver: Any, element_id: str) -> str:
    """The element's text; "" when the live refresh replaced it while it was read."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.ID, element_id).text)
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def accept_confirm(driver: Any) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 5).until(expected_conditions.alert_is_present()).accept()


def test_sign_in_then_the_overview_updates_live_as_jobs_complete(console: Console) -> None:
    """Unsigned, the console sends the browser to the sign-in page; a wrong token is
    refused; the admin token signs in with an HttpOnly, SameSite=Strict session cookie
    and no page holds the token; the overview then shows jobs completing without the
    page being reloaded (a marker set in the page survives), and the browser reports no
    script error or content-security-policy violation."""
    from selenium.webdriver.common.by import By

    with chrome() as driver:
        driver.get(console.base + "/jobs")
        assert "/console/login" in driver.current_url
        shot(driver, "sign-in")
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        driver.find_element(By.ID, "sign-in").click()
        h.wait_for(lambda: "not the admin token" in text_of(driver, "error"), what="refusal")
        assert not driver.get_cookies()
        assert all("401" in e for e in page_errors(driver))  # the refusal's status only

        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        h.wait_for(lambda: driver.current_url.endswith("/console/jobs"), what="back to jobs")
        (cookie,) = driver.get_cookies()
        assert cookie["name"] == "jobd_console"
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert TOKEN not in cookie["value"]

        driver.get(console.base + "/")
        assert TOKEN not in driver.page_source
        assert text_of(driver, "total-completed") == "0"
        driver.execute_script("window.__notReloaded = true")
        h.add_orders(console.db, (1, 600), (2, 600), (3, 600))
        ids = h.enqueue(console.db, 1, 2, 3)
        h.wait_for(lambda: h.all_in(console.db, ids, "completed"), what="the jobs completed")
        h.wait_for(
            lambda: text_of(driver, "total-completed") == "3",
            timeout_s=15,
            what="the overview to show 3 completed jobs",
        )
        assert driver.execute_script("return window.__notReloaded") is True
        h.wait_for(lambda: "work" in text_of(driver, "queues"), what="the queues table")
        h.wait_for(lambda: "leader" in text_of(driver, "nodes"), what="the leader node")
        console.charge(20, 21)  # two failures for the chart and the tiles
        h.wait_for(lambda: text_of(driver, "total-discarded") == "2", what="2 discarded")
        shot(driver, "overview")
        assert page_errors(driver) == []  # no script error, no CSP violation


def test_filter_job_detail_with_its_error_and_retry_from_the_page(console: Console) -> None:
    """The jobs list filtered by state shows only the failed charges; a job's page shows
    its error with the traceback, its row and the timeline; Retry there makes the
    database run it again, and once the payment is approved the job completes."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    h.add_orders(console.db, (1, 0))
    done = h.enqueue(console.db, 1)
    h.wait_for(lambda: h.all_in(console.db, done, "completed"), what="order 1 completed")
    failed = console.charge(7, 8)

    with chrome() as driver:
        console.sign_in(driver)
        driver.get(console.base + "/jobs")
        Select(driver.find_element(By.ID, "f-state")).select_by_visible_text("discarded")
        driver.find_element(By.ID, "apply").click()
        h.wait_for(lambda: "state=discarded" in driver.current_url, what="the filter applied")
        links = lambda: [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#jobs a.job-link")]  # noqa: E731
        h.wait_for(lambda: sorted(int(t) for t in links()) == sorted(failed), what="2 jobs")
        assert "no approval on file" in text_of(driver, "jobs")
        shot(driver, "jobs")

        job_id = max(failed)
        driver.find_element(By.LINK_TEXT, str(job_id)).click()
        h.wait_for(lambda: text_of(driver, "job-state") == "discarded", what="the job page")
        page = driver.page_source
        assert "RuntimeError: payment 8 refused: no approval on file" in page
        assert "Traceback (most recent call last)" in page
        assert "discarded" in text_of(driver, "timeline")
        shot(driver, "job")

        h.sql(console.db, "INSERT INTO public.approvals (id) VALUES (8)")
        driver.find_element(By.ID, "retry").click()
        accept_confirm(driver)
        h.wait_for(lambda: "retried" in driver.page_source, what="the retry's message")
        h.wait_for(lambda: h.all_in(console.db, [job_id], "completed"), what="the retried job ran")
        row = h.sql(console.db, "SELECT attempt, state FROM jobd.jobs WHERE id = $1", job_id)[0]
        assert row == {"attempt": 2, "state": "completed"}
        assert h.sql(console.db, "SELECT state FROM public.payments WHERE id = 8") == [
            {"state": "paid"}
        ]


def test_queue_pause_then_bulk_cancel_of_a_filtered_selection(console: Console) -> None:
    """Pause on the overview pauses the queue (the database says so, and its jobs wait);
    a filter's "Cancel all" asks first with the count of jobs it selects, and the
    confirmation cancels exactly those in the database."""
    from selenium.webdriver.common.by import By

    with chrome() as driver:
        console.sign_in(driver)
        mark = console.daemon.mark()
        driver.find_element(By.CSS_SELECTOR, "#queue-work button.pause").click()
        h.wait_for(lambda: "queue work paused" in driver.page_source, what="the pause message")
        rows = h.sql(console.db, "SELECT paused FROM jobd.queues WHERE name = 'work'")
        assert rows == [{"paused": True}]
        h.wait_for(
            lambda: len(console.daemon.find("queue.paused", mark, queue="work")) >= 2,
            what="the producer applied the pause",
        )
        assert "paused" in text_of(driver, "queue-work")

        h.add_orders(console.db, *[(i, 0) for i in range(10, 14)])
        ids = h.enqueue(console.db, 10, 11, 12, 13)
        driver.get(console.base + "/jobs?queue=work&state=available")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#jobs a.job-link")) == 4
        driver.find_element(By.ID, "bulk-cancel").click()
        h.wait_for(lambda: "selects 4 job(s)" in text_of(driver, "count"), what="the count")
        shot(driver, "bulk-cancel")
        assert h.all_in(console.db, ids, "available")
        driver.find_element(By.ID, "confirm").click()
        h.wait_for(lambda: "4 job(s) cancelled" in driver.page_source, what="the bulk message")
        assert h.all_in(console.db, ids, "cancelled")


def test_row_view_triggers_and_explain(console: Console) -> None:
    """The row view of orders 42 lists its job and says, condition by condition, that
    the row no longer matches the trigger's where (`status = 'new'` is false now that it
    is done); the triggers page lists triggers and schedules, and a trigger's page shows
    the SQL `jobd explain` prints."""
    from selenium.webdriver.common.by import By

    h.add_orders(console.db, (42, 0))
    ids = h.enqueue(console.db, 42)
    h.wait_for(lambda: h.all_in(console.db, ids, "completed"), what="order 42 processed")
    with chrome() as driver:
        console.sign_in(driver)
        driver.get(console.base + "/rows")
        driver.find_element(By.ID, "r-pk").send_keys("42")
        driver.find_element(By.ID, "look").click()
        check = h.wait_for(lambda: text_of(driver, "check-process"), what="the row's check")
        assert "does not match now" in check
        assert "status = 'new' is false" in check
        assert str(ids[0]) in text_of(driver, "row-jobs")
        assert '"status": "done"' in driver.page_source
        shot(driver, "row")

        driver.get(console.base + "/triggers")
        assert "status = 'new'" in text_of(driver, "trigger-orders-process")
        assert "0 0 1 1 *" in text_of(driver, "schedule-orders-tally")
        shot(driver, "triggers")
        driver.find_element(By.LINK_TEXT, "process").click()
        explain = h.wait_for(lambda: text_of(driver, "explain"), what="the explain SQL")
        assert "-- worker orders.process: re-read of the row" in explain
        assert "INSERT INTO" in explain
        shot(driver, "trigger")


def test_pages_read_without_javascript_and_show_no_secret(console: Console) -> None:
    """With JavaScript off, sign-in and every page still work for reading (the script
    only refreshes and confirms); no page holds the token or the database password."""
    from selenium.webdriver.common.by import By

    failed = console.charge(3)
    with chrome(javascript=False) as driver:
        console.sign_in(driver)
        assert "JavaScript is off" in text_of(driver, "no-script")  # it really is off
        pages = ["/", "/jobs", f"/jobs/{failed[0]}", "/triggers", "/triggers/orders/process"]
        pages.append("/rows?resource=payments&pk=3")
        for path in pages:
            driver.get(console.base + path)
            assert driver.find_element(By.TAG_NAME, "h1").text
            assert TOKEN not in driver.page_source
            assert "Internal error" not in driver.page_source
        driver.get(console.base + f"/jobs/{failed[0]}")
        assert "no approval on file" in driver.page_source


def _post(url: str, data: dict[str, str], headers: dict[str, str]) -> int:
    body = "&".join(f"{k}={v}" for k, v in data.items()).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_a_cross_site_post_is_refused(console: Console) -> None:
    """A page on another origin that posts a cancel form to the console (the signed-in
    browser sends its cookie: another port is the same site) is refused with 403 and the
    job stays as it was; outside the browser, a POST with the session but without its
    CSRF token, or with it but from another Origin, is refused too, and the same POST
    from the console's own origin goes through."""
    from selenium.webdriver.common.by import By

    mark = console.daemon.mark()
    status, _ = h.http(console.port, "/api/queues/work/pause", method="POST", token=TOKEN)
    assert status == 200
    h.wait_for(
        lambda: len(console.daemon.find("queue.paused", mark, queue="work")) >= 2,
        what="the producer applied the pause",
    )
    h.add_orders(console.db, (5, 0), (6, 0))
    ids = h.enqueue(console.db, 5, 6)
    target = f"{console.base}/jobs/{ids[0]}/cancel"
    attack = (
        f'<html><body><form id="f" method="post" action="{target}">'
        '<input name="csrf" value="guessed"></form>'
        '<script>document.getElementById("f").submit()</script></body></html>'
    ).encode()

    with h.http_receiver(lambda path, headers, body: (200, attack)) as evil, chrome() as driver:
        console.sign_in(driver)
        driver.get(evil + "/prize")
        h.wait_for(lambda: driver.current_url == target, what="the forged post")
        assert "cross-site" in text_of(driver, "error")
        assert h.job_states(console.db, ids) == {ids[0]: "available", ids[1]: "available"}
        cookie = driver.get_cookie("jobd_console")["value"]
        driver.get(f"{console.base}/jobs/{ids[1]}")
        csrf = driver.find_element(By.NAME, "csrf").get_attribute("value")

    origin = f"http://127.0.0.1:{console.port}"
    session = {"Cookie": f"jobd_console={cookie}"}
    url = f"{console.base}/jobs/{ids[1]}/cancel"
    assert _post(url, {}, {**session, "Origin": origin}) == 403
    assert _post(url, {"csrf": "wrong"}, {**session, "Origin": origin}) == 403
    assert _post(url, {"csrf": csrf}, {**session, "Origin": "http://evil.example"}) == 403
    assert _post(url, {"csrf": csrf}, {"Origin": origin}) == 403  # no session
    assert h.job_states(console.db, ids) == {ids[0]: "available", ids[1]: "available"}

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    request = urllib.request.Request(
        url, data=f"csrf={csrf}".encode(), method="POST", headers={**session, "Origin": origin}
    )
    try:
        urllib.request.build_opener(NoRedirect).open(request, timeout=10)
        status = 200
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 303
    assert h.job_states(console.db, ids) == {ids[0]: "available", ids[1]: "cancelled"}
