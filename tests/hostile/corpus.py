"""Build hostile and malformed census files, each paired with the behaviour cinqa documents for it.

Every case is a function of a :class:`Context` (where the secret sentinel file lives, which local URL
must never be contacted) returning the file's bytes. Its expectation is either a ``ReadError`` whose
problem matches ``error`` (and whose line is ``line``), or a clean read with ``issue`` rows, or a
read equal to the base fixture's (``same``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

BASE_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "cin-2023-24.xml"
BASE = BASE_FILE.read_bytes()
BASE_TEXT = BASE.decode("utf-8")
NO_LINE = -1  # an error that cannot name a line


@dataclass(frozen=True)
class Context:
    sentinel: Path  # a file whose content must never be read into anything
    url: str  # a local listener that must never be contacted


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Context], bytes]
    error: str | None = None  # regex for ReadError.problem
    line: int | None = None  # expected ReadError.line (NO_LINE: none); None: not checked
    issue: tuple[str, str] | None = None  # (element, regex for the problem) of an issue row
    same: bool = False  # reads to the same tables as the base fixture, with no issues


def swap(old: str, new: str, count: int = 1) -> bytes:
    assert old in BASE_TEXT, old
    return BASE_TEXT.replace(old, new, count).encode("utf-8")


def body() -> str:
    """The base fixture without its XML declaration."""
    return BASE_TEXT.split("\n", 1)[1]


def with_doctype(doctype: str, use: str = "") -> Callable[[Context], bytes]:
    def build(ctx: Context) -> bytes:
        text = BASE_TEXT.replace("<Message>", doctype.format(sentinel=ctx.sentinel.as_uri(), url=ctx.url)
                                 + "\n<Message>", 1)
        return text.replace("<LAchildID>C001", f"<LAchildID>{use}C001", 1).encode("utf-8")
    return build


def billion_laughs() -> str:
    lines = ['<!ENTITY lol0 "lol">']
    lines += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return "<!DOCTYPE Message [\n" + "\n".join(lines) + "\n]>"


DOCTYPE_REFUSED = r"declares a DOCTYPE or ENTITY.*refused|declares a DOCTYPE.*refused"

CASES: list[Case] = [
    Case("empty", lambda c: b"", error=r"^the file is empty$", line=NO_LINE),
    Case("whitespace", lambda c: b" \n\t\r\n  ", error=r"only whitespace", line=NO_LINE),
    Case("not-xml", lambda c: b"LAchildID,UPN\nC001,A201123456789\n", error=r"not XML", line=1),
    Case("binary", lambda c: bytes(random.Random(7).randrange(256) for _ in range(4096)), error=r".", line=1),
    Case("binary-after-lt", lambda c: b"<" + bytes(random.Random(8).randrange(256) for _ in range(4096)),
         error=r".", line=1),
    Case("nul-byte", lambda c: swap("C001", "C\x00001"), error=r"not well-formed XML: .*Char 0x0", line=22),
    Case("wrong-root", lambda c: b'<?xml version="1.0"?>\n<Return>\n<Header/>\n</Return>\n',
         error=r"^the root element is <Return>; a CIN census return starts with <Message>$", line=2),
    Case("html", lambda c: b"<!doctype html>\n<html><body>Sign in</body></html>", error=DOCTYPE_REFUSED, line=1),
    Case("two-roots", lambda c: BASE + b"<Message/>\n", error=r"truncated or malformed.*Extra content", line=143),
    Case("unknown-namespace", lambda c: swap("<Message>", '<Message xmlns="urn:example:cin">'),
         error=r"<Message> is in namespace 'urn:example:cin'; census returns use no namespace", line=2),
    Case("namespaced-child", lambda c: swap("<Child>", '<Child xmlns="urn:example:cin">'),
         issue=("Child", r"^element <Child> in namespace 'urn:example:cin' inside <Children>")),
    Case("utf8-bom", lambda c: b"\xef\xbb\xbf" + BASE, same=True),
    Case("utf16-bom-declared", lambda c: BASE_TEXT.replace("utf-8", "UTF-16").encode("utf-16"), same=True),
    Case("utf16-bom-undeclared", lambda c: body().encode("utf-16"), same=True),
    Case("utf16le-declared-no-bom", lambda c: BASE_TEXT.replace("utf-8", "UTF-16").encode("utf-16-le"), same=True),
    Case("utf16be-declared-no-bom", lambda c: BASE_TEXT.replace("utf-8", "UTF-16").encode("utf-16-be"), same=True),
    Case("utf16le-undeclared-no-bom", lambda c: body().encode("utf-16-le"),
         error=r"looks like UTF-16 but has neither a byte-order mark nor an XML declaration", line=1),
    Case("utf16-bom-doctype", lambda c: with_doctype('<!DOCTYPE Message [<!ENTITY x SYSTEM "{sentinel}">]>', "&x;")(c)
         .decode("utf-8").encode("utf-16"), error=DOCTYPE_REFUSED, line=2),
    Case("latin1-declared", lambda c: BASE_TEXT.replace("utf-8", "ISO-8859-1").replace("Hand written", "Système")
         .encode("latin-1"), same=True),
    Case("latin1-undeclared", lambda c: BASE_TEXT.replace("Hand written", "Système").encode("latin-1"),
         error=r"bytes do not match its encoding, UTF-8 unless it declares another", line=12),
    # Latin-1 text that went through a UTF-8 conversion the wrong way reads, with a warning.
    Case("latin1-double-encoded", lambda c: swap("Hand written", "Système".encode("utf-8").decode("latin-1")),
         issue=("SoftwareCode", r"looks wrongly decoded")),
    Case("latin1-replaced", lambda c: swap("<LAchildID>C002", "<LAchildID>C\ufffd002"),
         issue=("LAchildID", r"looks wrongly decoded")),
    Case("unknown-encoding", lambda c: BASE_TEXT.replace("utf-8", "klingon-8").encode("utf-8"),
         error=r"encoding|decode", line=None),
    Case("entity-file", with_doctype('<!DOCTYPE Message [<!ENTITY x SYSTEM "{sentinel}">]>', "&x;"),
         error=DOCTYPE_REFUSED, line=2),
    Case("entity-url", with_doctype('<!DOCTYPE Message [<!ENTITY x SYSTEM "{url}">]>', "&x;"),
         error=DOCTYPE_REFUSED, line=2),
    Case("external-dtd-file", with_doctype('<!DOCTYPE Message SYSTEM "{sentinel}">'), error=DOCTYPE_REFUSED, line=2),
    Case("external-dtd-url", with_doctype('<!DOCTYPE Message PUBLIC "-//X//Y" "{url}">'), error=DOCTYPE_REFUSED,
         line=2),
    Case("parameter-entity", with_doctype('<!DOCTYPE Message [<!ENTITY % p SYSTEM "{url}"> %p;]>'),
         error=DOCTYPE_REFUSED, line=2),
    Case("billion-laughs", with_doctype(billion_laughs(), "&lol9;"), error=DOCTYPE_REFUSED, line=2),
    Case("quadratic-blowup", with_doctype('<!DOCTYPE Message [<!ENTITY a "' + "x" * 50_000 + '">]>', "&a;" * 50_000),
         error=DOCTYPE_REFUSED, line=2),
    # A DOCTYPE hidden past the first 64 KiB (the prologue scan) is still refused, by the parser's report.
    Case("doctype-after-long-comment", lambda c: swap("<Message>", "<!--" + "x" * 100_000 + "-->\n"
         f'<!DOCTYPE Message [<!ENTITY x SYSTEM "{c.sentinel.as_uri()}">]>\n<Message>').replace(
             b"<LAchildID>C001", b"<LAchildID>&x;C001"), error=r"declares a DOCTYPE.*refused", line=NO_LINE),
    # Only a real declaration is refused: the same text inside a comment or a CDATA section is not one.
    Case("doctype-in-prologue-comment", lambda c: swap("<Message>", '<!-- <!DOCTYPE Message [<!ENTITY x "y">]> -->\n'
         "<Message>"), same=True),
    Case("doctype-in-body-comment", lambda c: swap("<Children>", "<Children><!-- <!DOCTYPE Message> <!ENTITY x> -->"),
         same=True),
    Case("doctype-in-cdata", lambda c: swap("<SoftwareCode>Hand written", "<SoftwareCode><![CDATA[<!DOCTYPE Message>]]>")),
    Case("undefined-entity", lambda c: swap("C001", "&x;C001"),
         error=r"refers to an entity that census returns do not define \(Entity 'x' not defined\)", line=22),
    Case("xinclude", lambda c: swap("<LAchildID>C001</LAchildID>", '<LAchildID>C001</LAchildID><xi:include '
         f'xmlns:xi="http://www.w3.org/2001/XInclude" href="{c.sentinel.as_uri()}" parse="text"/>'),
         issue=("include", r"^element <include> in namespace 'http://www.w3.org/2001/XInclude' inside "
                r"<ChildIdentifiers>")),
    Case("deep-nesting", lambda c: swap("<Ethnicity>WBRI</Ethnicity>", "<Ethnicity>WBRI</Ethnicity>"
         + "<a>" * 100_000 + "x" + "</a>" * 100_000), error=r"^the elements are nested too deeply", line=28),
    Case("moderate-nesting", lambda c: swap("<Ethnicity>WBRI</Ethnicity>", "<Ethnicity>WBRI</Ethnicity>"
         + "<a>" * 200 + "x" + "</a>" * 200), issue=("a", r"^unknown element <a> inside <ChildCharacteristics>$")),
    Case("long-element-name", lambda c: swap("<Ethnicity>WBRI</Ethnicity>", "<Ethnicity>WBRI</Ethnicity>"
         + "<" + "n" * 60_000 + "/>"), error=r".", line=28),
    Case("duplicate-identifiers", lambda c: swap("</ChildIdentifiers>", "</ChildIdentifiers><ChildIdentifiers>"
         "<LAchildID>C999</LAchildID></ChildIdentifiers>"),
         issue=("LAchildID", r"appears more than once; the first value \(C001\) is kept")),
    Case("duplicate-header", lambda c: swap("<Children>", "<Header><CollectionDetails><Year>1999</Year>"
         "</CollectionDetails></Header>\n  <Children>"), issue=("Header", r"^a second <Header>; only the first is read$")),
    Case("child-outside-children", lambda c: swap("<Children>", "<Child><ChildIdentifiers><LAchildID>Q1"
         "</LAchildID></ChildIdentifiers></Child>\n  <Children>"),
         issue=("Child", r"^<Child> is misplaced inside <Message>; it belongs inside <Children>$")),
    Case("impossible-date", lambda c: swap("<PersonBirthDate>2015-06-01", "<PersonBirthDate>2013-02-30"),
         issue=("PersonBirthDate", r"'2013-02-30' is not a valid date")),
    Case("code-wrong-case", lambda c: swap("<Ethnicity>WBRI", "<Ethnicity>wbri"),
         issue=("Ethnicity", r"'wbri' is not a valid ethnicity code in 2023-24 \(did you mean 'WBRI'\?\)")),
    Case("space-inside-code", lambda c: swap("<Ethnicity>WBRI", "<Ethnicity>WB RI"),
         issue=("Ethnicity", r"'WB RI' is not a valid ethnicity code")),
    Case("whitespace-around-values", lambda c: BASE_TEXT.replace(">2023", ">\n\t 2023").replace("</ReferralNFA>",
         "  \r\n</ReferralNFA>").encode("utf-8"), same=True),
    # Codes keep their spaces in the schema: reported, and checked stripped.
    Case("padded-code", lambda c: swap("<ReasonForClosure>RC8<", "<ReasonForClosure> RC8 <"),
         issue=("ReasonForClosure", r"^<ReasonForClosure> has spaces around its value.*read as 'RC8'$")),
    Case("comments-and-pis", lambda c: swap("<CINdetails>", "<!-- a note --><?cms keep?><CINdetails>", 4), same=True),
    Case("cdata-and-char-refs", lambda c: swap("<LAchildID>C001", "<LAchildID><![CDATA[C0]]>&#48;1"), same=True),
    Case("upn-after-birth-date", lambda c: swap("<UPN>A201123456789</UPN>\n        <PersonBirthDate>2015-06-01</PersonBirthDate>",
         "<PersonBirthDate>2015-06-01</PersonBirthDate>\n        <UPN>A201123456789</UPN>"),
         issue=("UPN", r"^<UPN> is out of order inside <ChildIdentifiers>: it comes after <PersonBirthDate>")),
    Case("two-reviews-blocks", lambda c: swap("</Reviews>", "</Reviews><Reviews><CPPreviewDate>2024-03-01</CPPreviewDate>"
         "</Reviews>"), issue=("Reviews", r"^<Reviews> appears more than once inside <ChildProtectionPlans>")),
    Case("reference-date-of-another-year", lambda c: swap("<ReferenceDate>2024-03-31", "<ReferenceDate>2023-03-31"),
         issue=("ReferenceDate", r"^<ReferenceDate> 2023-03-31 falls in the 2022-23 census but <Year> 2024 names")),
    Case("attribute", lambda c: swap("<Child>", '<Child status="secret">'),
         issue=("Child", r"^<Child> has attributes \(status\); census elements have none$")),
]


def truncations(data: bytes = BASE, points: int = 20) -> list[int]:
    """Return ``points`` offsets spread through ``data`` at which to cut it (never 0, never the end)."""
    step = len(data) / (points + 1)
    return sorted({max(1, round(step * (i + 1))) for i in range(points)})


def huge_text_file(path: Path, megabytes: int) -> Path:
    """Stream a return whose first LAchildID holds ``megabytes`` MiB of text, without holding it in memory."""
    head, tail = BASE.split(b"C001", 1)
    chunk = b"A" * (1 << 20)
    with path.open("wb") as fh:
        fh.write(head)
        for _ in range(megabytes):
            fh.write(chunk)
        fh.write(b"C001" + tail)
    return path


def huge_attribute_file(path: Path, megabytes: int) -> Path:
    """Stream a return whose first ``<ReferralNFA>`` has an attribute of ``megabytes`` MiB."""
    head, tail = BASE.split(b"<ReferralNFA>", 1)
    chunk = b"A" * (1 << 20)
    with path.open("wb") as fh:
        fh.write(head + b'<ReferralNFA note="')
        for _ in range(megabytes):
            fh.write(chunk)
        fh.write(b'">' + tail)
    return path


def replicated_file(path: Path, children: int) -> Path:
    """Write a valid return of ``children`` children by repeating the base fixture's, with fresh LAchildIDs."""
    start, end = BASE_TEXT.index("<Child>"), BASE_TEXT.rindex("</Child>") + len("</Child>")
    block = BASE_TEXT[start:end]
    ids = ["C001", "C002", "C003"]
    with path.open("w", encoding="utf-8") as fh:
        fh.write(BASE_TEXT[:start])
        for i in range(0, children, 3):
            chunk = block
            for j, old in enumerate(ids):
                chunk = chunk.replace(f"<LAchildID>{old}<", f"<LAchildID>R{i + j:07d}<")
            fh.write(chunk)
        fh.write(BASE_TEXT[end:])
    return path
