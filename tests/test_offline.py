"""Nothing leaves the machine: the session's network block works, and cinqa's work passes under it.

The block itself lives in ``tests/conftest.py``; these tests show that it refuses public
addresses (in this process and in Python subprocesses such as Jupyter kernels) while loopback
and local sockets still work, and that reading, validating (Great Expectations included),
reporting and comparing make no network attempt at all. Reports must open offline.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import socket
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

import cinqa
from cinqa.errors import CinqaError

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
RETURN_2324 = FIXTURES / "cin-2023-24.xml"
SAMPLES = ROOT / "data"
TEST_NET = "192.0.2.1"  # TEST-NET-1 (RFC 5737): documentation only, never routed


# -- the block ------------------------------------------------------------------------------


def test_a_public_address_is_refused_and_recorded(network_attempts):
    with pytest.raises(OSError) as info:
        socket.create_connection((TEST_NET, 80), timeout=2)
    assert info.value.errno == errno.ENETUNREACH and "blocked" in str(info.value)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex((TEST_NET, 443)) == errno.ENETUNREACH
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        s.sendto(b"census", (TEST_NET, 53))
    with pytest.raises(OSError):
        socket.getaddrinfo("example.com", 443)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s, pytest.raises(OSError):
        s.connect(("2001:db8::1", 80))
    attempts = network_attempts()
    assert len(attempts) == 5, attempts
    assert TEST_NET in attempts[0] and "example.com" in attempts[3]


def test_loopback_and_local_sockets_still_work(network_attempts):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        got.append(conn.recv(16))
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(("localhost", server.getsockname()[1]), timeout=5) as c:
        c.sendall(b"kernel")
    thread.join(5)
    server.close()
    assert got == [b"kernel"]
    a, b = socket.socketpair(socket.AF_UNIX)
    a.sendall(b"zmq")
    assert b.recv(3) == b"zmq"
    a.close()
    b.close()
    assert network_attempts() == []


def test_python_subprocesses_are_blocked_too(network_attempts):
    code = ("import socket\n"
            "try:\n"
            f"    socket.create_connection(({TEST_NET!r}, 80), timeout=2)\n"
            "except OSError as exc:\n"
            "    print('refused:', exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "refused:" in result.stdout and "blocked" in result.stdout, result
    attempts = network_attempts()
    assert len(attempts) == 1 and TEST_NET in attempts[0]
    assert attempts[0].split("\t")[0] != str(os.getpid())


def test_jupyter_kernels_are_blocked_but_still_run(tmp_path, network_attempts):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({TEST_NET!r}, 80), timeout=2)\n"
        "except OSError as exc:\n"
        "    print('refused:', exc)"))
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert "refused:" in nb.cells[0].outputs[0]["text"]
    attempts = network_attempts()
    assert len(attempts) == 1 and TEST_NET in attempts[0]


# -- cinqa under the block -------------------------------------------------------------------


def earlier_year(tmp_path: Path) -> Path:
    """Write the 2023-24 fixture relabelled as the 2022-23 return, for a year-on-year pair."""
    ret = cinqa.read_return(RETURN_2324, year="2022-23")
    header = dataclasses.replace(ret.header, year=2023, reference_date=None)
    return cinqa.write_return(dataclasses.replace(ret, header=header), tmp_path / "cin-2022-23.xml")


def test_reading_makes_no_network_attempt(network_attempts):
    paths = [*sorted(FIXTURES.glob("cin-*.xml")), SAMPLES / "sample-2013-14.xml"]
    for path in paths:
        if path.exists():
            assert len(cinqa.read_return(path).children) >= 1
    assert network_attempts() == []


def test_validating_with_great_expectations_makes_no_network_attempt(network_attempts):
    v = cinqa.validate(cinqa.read_return(RETURN_2324))
    assert len(v.checked) > 0 and len(v.errored) == 0, v.errored
    assert os.environ.get("GX_ANALYTICS_ENABLED") == "False"
    from cinqa.validate import _context

    assert _context().variables.analytics_enabled in (None, False)
    assert network_attempts() == []


def test_comparing_makes_no_network_attempt(tmp_path, network_attempts):
    comp = cinqa.compare([earlier_year(tmp_path), RETURN_2324])
    assert comp.years == ["2022-23", "2023-24"]
    assert len(comp.measures) > 0
    assert network_attempts() == []


# -- the report opens offline ----------------------------------------------------------------

# Attributes through which a browser fetches, or offers to open, another resource.
LINK_ATTRIBUTES = frozenset({"src", "href", "srcset", "action", "formaction", "data", "poster", "background",
                             "xlink:href", "manifest", "ping", "cite", "longdesc", "icon"})


class LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in LINK_ATTRIBUTES:
                self.links.append((tag, name, (value or "").strip()))
            if name == "style" and value:
                self.styles.append(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def offline_problems(page: str) -> list[str]:
    """List everything in an HTML page that needs the network (or another file) to display."""
    parser = LinkCollector()
    parser.feed(page)
    problems = [f"<{tag} {name}={value[:80]!r}>" for tag, name, value in parser.links
                if not (value.startswith("#") or value.lower().startswith("data:"))]
    for css in parser.styles:
        css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)  # comments may quote addresses; they fetch nothing
        for ref in re.findall(r"url\(\s*['\"]?([^'\")]*)", css) + re.findall(r"@import\s+['\"]([^'\"]*)", css):
            if not ref.strip().lower().startswith(("data:", "#")):
                problems.append(f"CSS {ref[:80]!r}")
    if re.search(r"<script\b[^>]*\bsrc\s*=", page, re.I):
        problems.append("a script loaded from elsewhere")
    return problems


def test_the_offline_check_finds_network_references():
    page = ("<html><head><link rel='stylesheet' href='https://cdn.example/x.css'>"
            "<style>/* https://example.com */ .a{background:url(//cdn.example/i.png)}</style>"
            "<script src=\"http://unpkg.com/w.js\"></script></head>"
            "<body><img src='data:image/png;base64,AA'><a href='#top'>top</a><a href='other.html'>x</a></body></html>")
    found = offline_problems(page)
    assert len(found) == 5, found
    assert offline_problems("<html><body><a href='#x'>x</a><img src='data:image/png;base64,AA'></body></html>") == []


def test_the_report_renders_without_network_and_opens_offline(tmp_path, network_attempts):
    from cinqa.report import render_report

    out = render_report([earlier_year(tmp_path), RETURN_2324], tmp_path / "out" / "report.html")
    page = out.read_text(encoding="utf-8")
    assert "<html" in page[:2000].lower()
    assert offline_problems(page) == []
    # The kernel that ran the report notebook was guarded too (its socket calls go through the block).
    assert network_attempts() == []


def test_render_report_refuses_to_write_a_page_that_needs_the_network():
    from cinqa.report import to_html

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("<img src='https://tracker.example/pixel.png'>"))
    with pytest.raises(CinqaError, match="from the network"):
        to_html(nb, "t")
