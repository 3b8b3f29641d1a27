"""Drive Debian's headless Chromium over the DevTools protocol: the opt-in browser checks and the docs' screenshots.

No Playwright or Selenium: Chromium's own remote-debugging port and ``websocket-client`` (a test
dependency) are enough to open a page, read what it did (requests, script errors, console errors)
and take a screenshot. :data:`OFFLINE` are the switches that leave the browser no way out: every
host name resolves to nothing and every request, loopback included, goes to a proxy that refuses.

``python tests/chromium.py shot PAGE.html OUT.png`` screenshots the top of a page (a window of
1400 by 2400 pixels), offline (how ``docs/report-20k.png`` is made; ``PAGE.html#ID`` starts at the
element ``ID``, as ``docs/explanations.png`` does at ``#Since-the-last-run``);
``python tests/chromium.py lab NOTEBOOK OUT.png`` runs a notebook in a headless JupyterLab and
screenshots it (``docs/drill-down-20k.png``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
           "--proxy-bypass-list=<-loopback>")


def chromium() -> str | None:
    """Return the path of Debian's chromium, or None when it is not installed."""
    return shutil.which("chromium")


def free_port() -> int:
    """Return a loopback port no one is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(probe: Callable[[], Any], seconds: float) -> Any:
    """Call ``probe`` every half second until it gives something true; return that, or raise TimeoutError."""
    end = time.monotonic() + seconds
    while True:
        try:
            found = probe()
        except (OSError, ValueError):
            found = None
        if found:
            return found
        if time.monotonic() > end:
            raise TimeoutError(f"gave up after {seconds} s")
        time.sleep(0.5)


class Browser:
    """Drive one page of a headless Chromium, keeping every event the page sends in :attr:`events`."""

    def __init__(self, url: str, profile: Path, websocket: Any, switches: Sequence[str] = (),
                 size: tuple[int, int] = (1400, 2400)) -> None:
        port = free_port()
        self.proc = subprocess.Popen(
            [chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
             f"--remote-debugging-port={port}", "--remote-allow-origins=*", f"--window-size={size[0]},{size[1]}",
             *switches, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The DevTools endpoint itself is on loopback, which the proxy switch does not touch.
        page = wait_for(lambda: [t for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                                 if t["type"] == "page"], 30)[0]
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self.n = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result; events that arrive meanwhile are kept."""
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, seconds: float = 120) -> dict[str, Any]:
        """Return the first event called ``method``, waiting for it if it has not come yet."""
        end = time.monotonic() + seconds
        while True:
            for e in self.events:
                if e["method"] == method:
                    return e
            if time.monotonic() > end:
                raise TimeoutError(f"no {method} after {seconds} s")
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)

    def open(self, url: str, seconds: float = 120) -> None:
        """Load ``url`` with the network, script and console events recorded from its first request on."""
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", seconds)

    def named(self, method: str) -> list[dict[str, Any]]:
        """Return the params of every event called ``method`` so far."""
        return [e["params"] for e in self.events if e["method"] == method]

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page and return its value."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def click(self, selector: str) -> None:
        """Click the middle of the element, with real mouse events (JupyterLab ignores synthetic clicks)."""
        x, y = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                       " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def choose(self, label: str, starting: str) -> None:
        """Choose the option starting with ``starting`` in the widget Dropdown labelled ``label``."""
        self.js(f"""(() => {{ const w = Array.from(document.querySelectorAll('.widget-dropdown'))
            .find(d => d.querySelector('label').textContent.trim() === {json.dumps(label)});
            const s = w.querySelector('select');
            s.selectedIndex = Array.from(s.options).findIndex(o => o.text.startsWith({json.dumps(starting)}));
            s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()""")

    def screenshot(self, path: Path, whole: bool = True) -> Path:
        """Write a PNG of the page (``whole``: its full height, not only the window) to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if whole:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return path

    def close(self) -> None:
        """Close the connection and end the browser."""
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(10)


class JupyterLab:
    """Run a JupyterLab server on loopback over ``root``, with its settings kept under ``state``."""

    def __init__(self, root: Path, state: Path) -> None:
        self.port = free_port()
        env = {**os.environ, **{v: str(state / v) for v in (
            "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={self.port}",
             "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}", "--allow-root",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status").status == 200, 60)

    def url(self, notebook: str) -> str:
        """Return the address that opens ``notebook`` (relative to the root) in the lab."""
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}"

    def close(self) -> None:
        """Stop the server."""
        self.proc.terminate()
        self.proc.wait(30)


def run_all(browser: Browser, seconds: float = 600) -> None:
    """Restart the open notebook's kernel and run every cell, as the toolbar's button does."""
    browser.call("Page.bringToFront")
    wait_for(lambda: "Idle" in (browser.js("document.querySelector('#jp-main-statusbar').innerText") or ""), 90)
    accept = ".jp-Dialog-button.jp-mod-accept"
    for _ in range(5):  # the toolbar may be drawn before its commands answer
        browser.click('jp-button[data-command="notebook:restart-run-all"]')
        try:
            wait_for(lambda: browser.js(f"!!document.querySelector('{accept}')"), 10)
            break
        except TimeoutError:
            continue
    browser.click(accept)


def _shot(page: str, out: Path) -> None:
    import websocket

    path, _, anchor = page.partition("#")
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser("about:blank", Path(profile), websocket, OFFLINE)
        try:
            browser.open(Path(path).resolve().as_uri() + (f"#{anchor}" if anchor else ""))
            browser.screenshot(out, whole=False)
        finally:
            browser.close()


def _lab(notebook: Path, out: Path, rule: str) -> None:
    import websocket

    with tempfile.TemporaryDirectory() as state:
        lab = JupyterLab(notebook.parent, Path(state))
        browser = Browser(lab.url(notebook.name), Path(state) / "chromium", websocket, size=(1400, 1800))
        try:
            run_all(browser)
            wait_for(lambda: browser.js("document.querySelectorAll('.widget-dropdown select').length") == 4, 900)
            browser.choose("Rule", rule)
            # JupyterLab asks whether to fetch its news even with news_url empty; answer no, so the toast goes.
            browser.js("Array.from(document.querySelectorAll('.jp-toast-button, .Toastify button'))"
                       ".filter(b => b.innerText.trim() === 'No').forEach(b => b.click())")
            time.sleep(5)
            browser.js("document.querySelector('.widget-dropdown').scrollIntoView()")
            browser.screenshot(out, whole=False)
        finally:
            browser.close()
            lab.close()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "shot":
        _shot(args[0], Path(args[1]))
    elif command == "lab":
        _lab(Path(args[0]), Path(args[1]), args[2] if len(args) > 2 else "8606")
    else:
        raise SystemExit(f"unknown command {command!r}; use shot PAGE OUT.png or lab NOTEBOOK OUT.png [RULE]")
