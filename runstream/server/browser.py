"""Real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, for the UI's
browser tests and ``make bench`` (a test helper shipped with the server; Selenium is a dev dependency,
imported when a browser starts).

Nothing may leave the machine: the browser resolves every host but 127.0.0.1
to nothing, and :meth:`Browser.requests` lists every URL the page asked for
(from Chromium's network log), so a test can assert that all of them went to
the server under test. :meth:`Browser.console_errors` returns the console's
errors (uncaught exceptions, failed loads, CSP violations).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "CHROMEDRIVER", "FLAGS", "Browser"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    # Every host but the loopback resolves to nothing: a request that tries to leave fails here.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class Browser:
    """One headless Chromium with a fresh profile; close it (or use ``with``)."""

    def __init__(self, *, width: int = 1400, height: int = 1000) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="runstream-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={width},{height}")
        options.add_argument(f"--user-data-dir={self._profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        try:
            self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        except Exception:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        self._requests: list[str] = []
        self._console: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def open(self, url: str) -> None:
        """Load ``url`` as a new document (a hash change alone would keep the old page's state)."""
        self.driver.get("about:blank")
        self.driver.get(url)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait_for(self, script: str, timeout: float = 20.0, *args: Any) -> Any:
        """Poll ``script`` (a JS expression's body, ``return ...``) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page did not satisfy {script!r} within {timeout:.0f}s")
            time.sleep(0.05)

    def _drain_logs(self) -> None:
        driver: Any = self.driver  # Selenium's get_log is untyped
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self._requests.append(message["params"]["request"]["url"])
        self._console.extend(driver.get_log("browser"))

    def requests(self) -> list[str]:
        """Every URL requested since the browser started (documents, scripts, styles, images, fetches)."""
        self._drain_logs()
        return list(self._requests)

    def requests_elsewhere(self, base: str) -> list[str]:
        """Network requests (http, https, ws) to anywhere but ``base``; the browser's own chrome:// pages
        and data: URLs are not network requests."""
        return [u for u in self.requests() if u.split(":", 1)[0] in ("http", "https", "ws", "wss")
                and not u.startswith(base)]

    def console_errors(self) -> list[str]:
        """Console messages of level SEVERE since the browser started."""
        self._drain_logs()
        return [e["message"] for e in self._console if e.get("level") == "SEVERE"]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
