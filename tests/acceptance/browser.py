"""A real headless browser for the console's tests: Debian's chromium and its
chromium-driver, driven through selenium (`.ci/run` installs them).

    with chrome() as driver: driver.get(url); shot(driver, "overview")

Without them the tests skip, saying why, unless `JOBD_REQUIRE_BROWSER=1` (CI sets it):
then a missing browser fails the run instead of hiding it. Screenshots go to
`$JOBD_CONSOLE_SHOTS` (default `build/console/`, ignored by git); docs/console/ keeps the
ones the README shows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("JOBD_CONSOLE_SHOTS", ROOT / "build" / "console"))
CANDIDATES = {
    "browser": ("/usr/bin/chromium", "/usr/bin/chromium-browser"),
    "driver": ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"),
}


def _first(kind: str) -> str | None:
    found = [p for p in CANDIDATES[kind] if os.access(p, os.X_OK)]
    return found[0] if found else shutil.which(Path(CANDIDATES[kind][0]).name)


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skips (or fails under JOBD_REQUIRE_BROWSER=1)."""
    browser, driver = _first("browser"), _first("driver")
    problem = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        problem = "selenium is not installed (the dev extra has it)"
    if browser is None or driver is None:
        problem = (
            "chromium and chromium-driver are not installed"
            " (apt-get install chromium chromium-driver)"
        )
    if problem is None:
        assert browser is not None and driver is not None
        return browser, driver
    if os.environ.get("JOBD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"JOBD_REQUIRE_BROWSER=1 but {problem}")
    pytest.skip(problem)


@contextlib.contextmanager
def chrome(*, javascript: bool = True) -> Iterator[Any]:
    """A headless chromium session (closed at the end)."""
    browser, driver_path = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1360,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # see page_errors
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    # A click that submits a form returns before the next page is there: finding an
    # element waits for it (up to 5 s) instead of failing at once.
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def page_errors(driver: Any) -> list[str]:
    """The browser console's errors since the last call (script errors, refused
    resources, content-security-policy violations)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shot(driver: Any, name: str) -> Path:
    """Save a screenshot of the whole page as `<SHOTS>/<name>.png`."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1360, max(700, min(int(height) + 160, 2600)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1360, 1000)
    return path
