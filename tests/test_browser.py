"""The HTML report in a real browser: headless Chromium opens it offline, runs no script in error, and shows it whole.

Opt-in (marker ``browser``; ``make test-browser`` runs it): rendering the report takes a minute or
more and needs Debian's ``chromium``, which the test names when it is missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cinqa
from chromium import OFFLINE, Browser, chromium

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-2025-26-errors.xml"
LOCAL_SCHEMES = ("file:", "data:", "about:")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """Render the report of the sample with errors, open it offline, and yield the browser showing it."""
    if chromium() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    import websocket

    folder = tmp_path_factory.mktemp("report")
    report = folder / "report.html"
    cli = Path(sys.executable).with_name("cinqa")
    done = subprocess.run([cli, "validate", str(SAMPLE), "--html", str(report)], capture_output=True, text=True,
                          timeout=840)
    assert done.returncode in (0, 1), done.stderr
    browser = Browser("about:blank", folder / "profile", websocket, OFFLINE)
    try:
        browser.open(report.as_uri())
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def validation():
    return cinqa.validate(cinqa.read_return(SAMPLE))


def test_the_report_asks_nothing_of_the_network(page):
    asked = [r["request"]["url"] for r in page.named("Network.requestWillBeSent")]
    assert asked and all(url.startswith(LOCAL_SCHEMES) for url in asked), asked
    assert page.named("Network.loadingFailed") == []


def test_the_report_runs_no_script_in_error(page):
    assert page.named("Runtime.exceptionThrown") == []
    errors = [e["entry"]["text"] for e in page.named("Log.entryAdded") if e["entry"]["level"] == "error"]
    errors += [str(c["args"]) for c in page.named("Runtime.consoleAPICalled") if c["type"] == "error"]
    assert errors == []


def test_the_banner_gives_the_verdict(page, validation):
    banner = page.js("document.querySelector('.cinqa-callout b').innerText")
    assert banner == str(validation.verdict)
    assert "Not" in banner  # the sample has errors: the banner must not say it is ready


def test_every_failing_rule_has_its_table(page, validation):
    shown = page.js("""Array.from(document.querySelectorAll('h3[id^="rule-"]')).map(h => {
        let next = h.nextElementSibling;
        while (next && !next.querySelector('table.cinqa-table') && !next.matches('table.cinqa-table, h3'))
            next = next.nextElementSibling;
        const table = next && (next.matches('table') ? next : next.querySelector('table.cinqa-table'));
        return [h.id.slice(5), table ? table.tBodies[0].rows.length : 0]; })""")
    rules = validation.rule_summary["rule"].astype(str).tolist()
    assert [rule for rule, _ in shown] == rules
    assert all(rows > 0 for _, rows in shown), shown


def test_every_image_is_loaded(page):
    images = page.js("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 22)])")
    assert len(images) >= 2
    assert all(done and width > 0 and src.startswith("data:image/png") for done, width, src in images), images
