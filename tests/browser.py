"""A real headless Chromium (Debian ``chromium``), driven over the DevTools protocol.

The binary is installed with apt-get when missing (as for redis and PgBouncer, ``ensure_debian_binary``).
Every host name but 127.0.0.1 resolves to nothing (``--host-resolver-rules``), Chromium's own background
traffic is switched off, and every request the page makes is logged (``Network.requestWillBeSent``), so a
test can show that nothing left the machine.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.support import ensure_debian_binary

START_TIMEOUT = 30.0
# Only loopback resolves; anything else fails at once instead of leaving the machine.
HOST_RULES = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"


@dataclass
class Page:
    """One tab: evaluate JavaScript, wait for conditions, and see every request it made."""

    ws: ClientConnection
    requests: list[str] = field(default_factory=list)
    responses: list[tuple[str, str, int]] = field(default_factory=list)  # (method, url, status)
    console: list[str] = field(default_factory=list)
    # (method, url, body or None) of every request the page sent.
    sent: list[tuple[str, str, str | None]] = field(default_factory=list)
    # (url, corsError, failedParameter) of every request the browser refused for CORS.
    cors_errors: list[tuple[str, str, str]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _methods: dict[str, str] = field(default_factory=dict)
    _urls: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
            self._methods[params["requestId"]] = params["request"]["method"]
            self._urls[params["requestId"]] = params["request"]["url"]
            request = params["request"]
            self.sent.append((request["method"], request["url"], request.get("postData")))
        elif method == "Network.responseReceived":
            response = params["response"]
            self.responses.append(
                (self._methods.get(params["requestId"], "?"), response["url"], int(response["status"]))
            )
        elif method == "Network.loadingFailed" and "corsErrorStatus" in params:
            status = params["corsErrorStatus"]
            url = self._urls.get(params["requestId"], "?")
            self.cors_errors.append((url, status.get("corsError", ""), status.get("failedParameter", "")))
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of ``expression`` (awaited when it is a promise), or the JavaScript error raised."""
        result = self.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy; fail with the page's text when it never is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise AssertionError(
            f"timed out waiting for {expression!r}; page text:\n{text}\nconsole: {self.console}"
        )

    def wait_for_response(self, url: str, timeout: float = 30.0) -> tuple[str, str, int]:
        """The first response to ``url`` (query string aside), waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.evaluate("0")  # lets the events that arrived meanwhile be read
            for response in self.responses:
                if response[1].split("?")[0] == url:
                    return response
            time.sleep(0.2)
        raise AssertionError(f"no response from {url}; responses: {self.responses}; console: {self.console}")

    def foreign_requests(self) -> list[str]:
        """Requests the page sent anywhere but loopback (``data:``/``blob:`` URLs never leave)."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme in {"http", "https", "ws", "wss"}
            and urlsplit(url).hostname not in {"127.0.0.1", "localhost", "::1"}
        ]


@contextmanager
def chromium() -> Iterator[Page]:
    """A headless Chromium with one tab, closed afterwards."""
    binary = ensure_debian_binary("chromium", "chromium")
    profile = Path(tempfile.mkdtemp(prefix="tasks-chromium-"))
    process = subprocess.Popen(  # noqa: S603 - the Debian binary found above
        [
            binary,
            "--headless=new",
            "--no-sandbox",  # we run as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--metrics-recording-only",
            f"--host-resolver-rules={HOST_RULES}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port = _devtools_port(profile, process)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(ws_url, max_size=None, open_timeout=10) as ws:
            page = Page(ws)
            page.call("Network.enable")
            page.call("Runtime.enable")
            page.call("Page.enable")
            yield page
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):  # written but still empty
            return int(marker.read_text().splitlines()[0])
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")
