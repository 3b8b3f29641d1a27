"""Read a census XML file into a :class:`CensusReturn`, streaming, safely and without losing values.

Extraction follows the union of every year's format, so a file is read the same way whatever
year it claims to be; the year is then settled (override, header, structure) and the tables are
typed and checked against that year's format. Anything that does not fit becomes a row of
``CensusReturn.issues`` rather than disappearing.

Safety and memory: lxml parses with no DTD, no entity expansion, no network, no XInclude and its
size limits on (``_SAFE``); a DOCTYPE is refused outright, and every parser failure becomes a
:class:`ReadError` naming file, line and problem. Each ``<Child>`` is walked once when it has been
parsed and freed in batches, so the tree stays small however large the file; values are kept as
interned strings in per-table row lists and typed a column at a time, once per distinct value (peak memory beyond the
imports is about 1.5-2.5 times the file's size).
"""

from __future__ import annotations

import gc
import re
from array import array
from collections import defaultdict
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import pandas as pd
from lxml import etree

from cinqa import spec
from cinqa.errors import ReadError, YearError, shorten
from cinqa.progress import bar
from cinqa.returns import ISSUE_COLUMNS, VALUE_DTYPES, CensusReturn, Header

# No DTD, no entity expansion, no network, libxml2's size limits kept (huge_tree=False).
_SAFE: dict[str, Any] = dict(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
                             remove_comments=True, remove_pis=True)
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_DATE = r"[1-9]\d{3}-\d{2}-\d{2}"  # years 1000-9999, as _FIRST_DAY.._LAST_DAY
_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?"
_FIRST_DAY, _LAST_DAY = np.datetime64("1000-01-01", "D"), np.datetime64("9999-12-31", "D")
_BOOL_SPELLINGS = {**_BOOLS, "TRUE": True, "FALSE": False, "True": True, "False": False}
_PROLOGUE_BYTES = 65536
_MAX_VALUE = 10_000_000  # libxml2's limit on a text node or attribute value without huge_tree
_TOO_LARGE = "a value is too large to be a census value"
_QUOTE = 60  # a problem quotes this many characters of a value at most, then gives its length
# What may come before the root element besides a DOCTYPE: spaces, the XML declaration and other
# processing instructions, and comments (a DOCTYPE quoted inside one of these is no declaration).
_PROLOGUE_ITEM = re.compile(r"[ \t\r\n]+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_UNSAFE_DECLARATION = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)

# Text decoded with the wrong encoding: U+FFFD (a byte the converter could not decode), or a UTF-8
# lead byte followed by a continuation byte, each read as one Latin-1 or Windows-1252 character ("Ã©").
_MOJIBAKE = re.compile("\ufffd|[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                       "\u02c6\u02dc\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a"
                       "\u20ac\u2122]")

Row = list[Any]  # a table row's values, by column position (see _LAYOUT)


def read_return(path: str | Path, *, year: str | None = None, progress: bool | None = None) -> CensusReturn:
    """Read the census return at ``path``; ``year`` (``"2013-14"``) overrides the header's year.

    Raises :class:`cinqa.errors.ReadError` when the file cannot be read as a CIN return at all;
    everything short of that is loaded, and reported in ``.issues``. A bar counts the bytes read
    where someone can see it (``progress``: see :func:`cinqa.progress.shown`).
    """
    if year is not None and year not in spec.YEARS:
        raise YearError(f"census year {year!r} is not supported; choose one of {', '.join(spec.YEARS)}")
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:  # _Reader says why the file cannot be read
        size = None
    with bar(f"Reading {path.name}", size, unit="B", show=progress) as counter:
        return _Reader(path, year, counter.update).read()


# Dispatch codes: what an element found inside a container is. RESTRICTED is added to the code of an
# element that only some census years have, so its use can be noted without a test per element.
LEAF, GROUP, TABLE, LIST, OPAQUE, REDIRECT, SLOW_LEAF = range(7)
RESTRICTED = 8

# (code, node, column position or table, detail, the child's own Dispatch, order key); see _dispatch.
Entry = tuple[int, spec.Node, Any, Any, Any, float]
# A container's children: ({tag: column position} of plain values, {tag: Entry} of all, the node).
Dispatch = tuple[dict[str, int], dict[str, Entry], spec.Node]


def _own_columns(node: spec.Node) -> list[str]:
    """List the columns that the plain values of a table's own elements (and its groups') fill, in order."""
    out: list[str] = []
    for c in node.children:
        if c.kind == "leaf" and not c.row:
            out.append(c.column)
        elif c.kind == "group":
            out += _own_columns(c)
    return out


def _layout() -> dict[str, dict[str, int]]:
    """Give each column of each table of rows (and of the header) its position in a row list.

    A table's own plain values come first, in the order of the format, so that within each element
    their positions rise in document order and serve as order keys (see _dispatch).
    """
    out: dict[str, dict[str, int]] = {}
    for t, node in spec.table_nodes().items():
        if node.kind != "list":
            cols = [*_own_columns(node), *(n.column for n in spec.value_columns(t))]
            cols = list(dict.fromkeys(cols)) + (["kind"] if spec.has_kind_column(t) else [])
            out[t] = {c: i for i, c in enumerate(cols)}
    out[""] = {c: i for i, c in enumerate(dict.fromkeys(n.column for n in spec.HEADER.walk() if n.kind == "leaf"))}
    return out


_LAYOUT = _layout()


def _blank(table: str, fixed: dict[str, str] | None = None) -> Row:
    """Return an empty row of ``table``, holding its ``fixed`` values."""
    row: Row = [None] * len(_LAYOUT[table])
    for col, v in (fixed or {}).items():
        row[_LAYOUT[table][col]] = v
    return row


def _dispatch(slow: bool, year: str | None = None,
              unmarked: list[tuple[spec.Node, str, int]] | None = None) -> dict[str, Dispatch]:
    """Describe how to read the header's and a child's elements: for each container, its children as
    ({tag: column position} of plain values, {tag: (code, node, column position or table, detail,
    the child's own Dispatch, order key)} of all, the container's node).

    Order keys rise in the order the format lists a container's elements, so that one comparison
    per element finds one out of order: a plain value's key is its column position (which rises,
    see _layout), and the elements between two plain values get keys between theirs.

    ``slow`` sends every value through :meth:`_Reader._leaf`. With ``year`` (the year the file will be
    read as, known before its children), a child's plain values of that year are not marked RESTRICTED:
    they cannot be out of place, and most values of a return take the quickest path. Each of them is
    added to ``unmarked`` as (node, table, column position).
    """

    def keys(n: spec.Node, owner: str) -> list[float]:
        plain = [(i, _LAYOUT[owner][c.column]) for i, c in enumerate(n.children) if c.kind == "leaf" and not c.row]
        if any(a[1] >= b[1] for a, b in zip(plain, plain[1:])):
            raise ValueError(f"<{n.name}>: its values' column positions do not rise in document order (see _layout)")
        end = (len(n.children), (plain[-1][1] if plain else -1) + len(n.children) + 1)
        out: list[float] = []
        for (i, lo), (j, hi) in zip([(-1, -1), *plain], [*plain, end]):
            out += [lo + (hi - lo) * (k + 1) / (j - i) for k in range(j - i - 1)] + ([hi] if j < len(n.children) else [])
        return out

    def add(n: spec.Node, owner: str, known: str | None) -> Dispatch:
        tags: dict[str, Entry] = {}
        for c, order in zip(n.children, keys(n, owner)):
            entry: Entry
            if c.kind == "leaf":
                at = _LAYOUT[c.row["table"]][c.column] if c.row else _LAYOUT[owner][c.column]
                entry = (REDIRECT if c.row else SLOW_LEAF if slow else LEAF, c, at, None, None, order)
            elif c.kind == "group":
                entry = (GROUP, c, None, None, add(c, owner, known), order)
            elif c.kind == "table":
                entry = (TABLE, c, c.table, _blank(c.table, c.fixed), add(c, c.table, known), order)
            elif c.kind == "list":
                entry = (LIST, c, c.table, c.leaf, None, order)
            else:
                entry = (OPAQUE, c, None, None, None, order)
            if c.restricted and entry[0] == LEAF and known in c.years and unmarked is not None:
                unmarked.append((c, owner, entry[2]))
            elif c.restricted:
                entry = (entry[0] + RESTRICTED, *entry[1:])
            for tag in (c.name, *c.aliases):
                tags[tag] = entry
        leaves = {tag: e[2] for tag, e in tags.items() if e[0] == LEAF}
        return leaves, tags, n

    return {"Header": add(spec.HEADER, "", None), "Child": add(spec.CHILD, spec.CHILD.table or "children", year)}


_BY_YEAR: dict[str | None, tuple[dict[str, Dispatch], list[tuple[spec.Node, str, int]]]] = {}


def _dispatch_for(year: str | None) -> tuple[dict[str, Dispatch], list[tuple[spec.Node, str, int]]]:
    """Return the dispatch for reading a file as ``year`` (None: not yet known), and its unmarked values."""
    if year not in _BY_YEAR:
        unmarked: list[tuple[spec.Node, str, int]] = []
        _BY_YEAR[year] = _dispatch(False, year if year in spec.YEARS else None, unmarked), unmarked
    return _BY_YEAR[year]


def _homes() -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for n in spec.nodes():
        for tag in (n.name, *n.aliases):
            out[tag].add(n.parent or "")
    return out


_DISPATCH_SLOW = _dispatch(slow=True)
_LIST_TABLES = frozenset(t for t, n in spec.table_nodes().items() if n.kind == "list")
_HOMES = _homes()
_WITH_ATTRIBUTES = etree.XPath("descendant-or-self::*[@*]")
_ATTRIBUTED = etree.XPath("*[position() <= $end]/descendant-or-self::*[@*]")
# Text beside elements (census elements hold either elements or one value, never both): text nodes
# of an element that has elements. A container holding text and no elements is caught in _fill.
_STRAY = etree.XPath("*[position() <= $end]/descendant-or-self::*[*]/text()[normalize-space()]")
_OPAQUE = " or ".join(f"ancestor-or-self::{t}" for n in spec.nodes() if n.kind == "opaque" for t in (n.name, *n.aliases))
_STRAY_IN_HEADER = etree.XPath(f"descendant-or-self::*[*]{f'[not({_OPAQUE})]' if _OPAQUE else ''}/text()[normalize-space()]")
_XML_SPACE = " \t\r\n"  # what XML (and normalize-space) counts as whitespace
_XML_SPACE_BYTES = _XML_SPACE.encode()
_OWN_TEXT = etree.XPath("text()[normalize-space()]")
_ALL_TEXT = etree.XPath("descendant-or-self::text()[normalize-space()]")
_LEAF_TAGS = frozenset(t for n in spec.nodes() if n.kind == "leaf" for t in (n.name, *n.aliases))
_KNOWN_TAGS = frozenset(t for n in spec.nodes() for t in (n.name, *n.aliases))
_EQ_ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "utf-16",
                           "utf-16le", "utf-16be", "windows-1252", "cp1252", "iso-8859-15"})
# Bytes read without a complete child before giving up (see _Counting): far beyond any real child,
# above libxml2's 10 MB text-node limit (so a huge value gets its own message), and small enough
# that a flood of other elements cannot take much memory.
_MAX_GAP = 16 * 2**20
_BATCH = 256  # children read before they are checked for attributes and freed together
_HEADER_MODELLED = ("Collection", "Year", "ReferenceDate", "LEA", "SourceLevel", "SoftwareCode", "Release",
                    "SerialNo", "DateTime")
_HEADER_UNMODELLED = tuple(n.name for n in spec.HEADER.walk() if n.kind == "leaf" and n.name not in _HEADER_MODELLED)


class _Reader:
    """One read of one file: extraction state, then typing; use once."""

    def __init__(self, path: Path, year: str | None, tick: Callable[[int], Any] | None = None) -> None:
        self.path = path
        self.override = year
        self.tick = tick
        # Per table, parallel: flattened key tuples, source lines (0 = unknown), and values (a row
        # list; a str for lists).
        self.store: dict[str, tuple[array, array, list[Any]]] = {
            t: (array("q"), array("q"), []) for t in spec.TABLE_KEYS}
        self.dispatch, self.unmarked = _dispatch_for(year)
        self.blank_child = _blank("children")
        self.same = {}.setdefault  # interning of values, for the life of one read
        self.batch_parent: etree._Element | None = None
        self.batch_last: etree._Element | None = None
        self.batch_count = 0
        self.source: _Counting | None = None
        self.declared_eq = 0
        self.eq_means_equals = True  # UTF-8 (the default), UTF-16 and ASCII-based encodings
        self.wide: str | None = None  # the UTF-16 codec, for a file in UTF-16
        self.issues: list[tuple[Any, ...]] = []
        self.restricted: dict[str, array] = defaultdict(lambda: array("l"))
        self.header_row: dict[str, str] = {}
        self.header_line: int | None = None
        self.n_children = 0
        self.blocks: list[etree._Element] = []  # the <Children> elements whose children were read
        # Every value stored since the last _flush, in document order; a batch whose text holds
        # exactly these (and that raised no issue) has no text beside its elements (see _flush).
        self.texts: list[str] = []
        self.batch_issues = 0
        self.check_text = True
        self.extra: list[tuple[str, str]] = []
        self.header_lines: dict[str, int] = {}
        # Issues about a value whose element's own line is found by a second pass: (issue, keys, column).
        self.pending: list[tuple[int, tuple[int, ...], str]] = []
        self.wanted: set[int] | None = None
        # The year the file will be read as, once known before its children (override, or the header's).
        self.year_hint: str | None = year
        self._fill = self._walker()

    # -- extraction -------------------------------------------------------------------------

    def read(self) -> CensusReturn:
        # Rows are lists, which the cyclic garbage collector would traverse again and again as they
        # pile up (a second at 200,000 children); a read makes no cycles, so it is paused meanwhile.
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._read()
        finally:
            self._fill = _spent  # the walker refers to this reader: leave no cycle behind
            if paused:
                gc.enable()

    def _read(self) -> CensusReturn:
        with self._open() as fh:
            self._check_prologue(fh)
            self._check_root(fh)
            self._parse(fh)
        year = self._settle_year()
        tables = {t: self._frame(t, year) for t in spec.TABLE_KEYS}
        self._check_required_tables(tables)
        header = self._header(year)
        self._check_restricted(year)
        if self.pending:
            self._locate_values()
        issues = pd.DataFrame.from_records(self.issues, columns=list(ISSUE_COLUMNS))
        children = tables["children"]
        # Children are numbered 1..n in row order, so a child's LAchildID is at position child - 1.
        ids = children["LAchildID"].astype("object").to_numpy()
        issues["LAchildID"] = pd.Series(_take(ids, issues["child"]), index=issues.index, dtype="str")
        issues["child"] = issues["child"].astype("Int64")
        issues["line"] = issues["line"].astype("Int64")
        issues = issues.sort_values("line", kind="stable", na_position="first").reset_index(drop=True)
        for name, df in tables.items():
            if name != "children":
                df.insert(len(spec.TABLE_KEYS[name]), "LAchildID",
                          pd.Series(ids[df["child"].to_numpy() - 1], index=df.index, dtype="str"))
        return CensusReturn(year=year, header=header, tables=tables, issues=issues, path=self.path)

    def _open(self) -> BinaryIO:
        try:
            if not self.path.is_file():
                raise ReadError(self.path, "no such file" if not self.path.exists() else "not a regular file")
            return self.path.open("rb")
        except OSError as exc:
            raise ReadError(self.path, f"cannot open the file ({exc.strerror or exc})") from None

    def _check_prologue(self, fh: BinaryIO) -> None:
        head = fh.read(_PROLOGUE_BYTES)
        # '=' signs of the XML declaration, so that any other one hints at an attribute (see _flush).
        start = head.find(b"<?xml")
        if 0 <= start <= 3:
            decl = head[start:head.find(b"?>", start) + 1]
            self.declared_eq = decl.count(b"=")
            named = re.search(rb"encoding\s*=\s*[\"']([A-Za-z0-9._-]+)", decl)
            self.eq_means_equals = not named or named.group(1).decode().lower().replace("_", "-") in _EQ_ENCODINGS
        fh.seek(0)
        if not head:
            raise ReadError(self.path, "the file is empty")
        if not head.strip():
            raise ReadError(self.path, "the file holds only whitespace, no XML")
        wide = self.wide = _utf16(head)
        if wide and not head.startswith((b"\xff\xfe", b"\xfe\xff")) and "<?xml" not in head[:20].decode(wide, "replace"):
            raise ReadError(self.path, "the file looks like UTF-16 but has neither a byte-order mark nor an XML "
                            "declaration, so its encoding cannot be known; save it as UTF-8", 1)
        # Markup is ASCII in every encoding but UTF-16, so Latin-1 keeps its positions and lines.
        where = _declaration_line(head.decode(wide, errors="replace") if wide
                                  else head.removeprefix(b"\xef\xbb\xbf").decode("latin-1"))
        if where is not None:
            raise ReadError(
                self.path,
                "the file declares a DOCTYPE or ENTITY; census returns never do, and such declarations "
                "can be used to read other files or exhaust memory, so the file is refused",
                where,
            )

    def _check_root(self, fh: BinaryIO) -> None:
        """Refuse a file whose root is not a plain <Message>, or that has a DOCTYPE, before reading on."""
        root = None
        try:
            for _, root in etree.iterparse(fh, events=("start",), **_SAFE):
                break
        except etree.XMLSyntaxError as exc:
            raise self._syntax_error(exc) from None
        except (ValueError, LookupError) as exc:  # e.g. an unknown encoding declaration
            raise ReadError(self.path, f"cannot decode the file: {exc}") from None
        fh.seek(0)
        if root is None:
            raise ReadError(self.path, "the file has no element; a CIN census return starts with <Message>")
        if root.getroottree().docinfo.doctype:
            raise ReadError(self.path, "the file declares a DOCTYPE; census returns never do, and such "
                            "declarations can be used to read other files or exhaust memory, so the file is refused")
        name = etree.QName(root.tag)
        if name.localname != "Message":
            raise ReadError(self.path, f"the root element is <{name.localname}>; a CIN census return starts "
                            "with <Message>", _srcline(root))
        if name.namespace:
            raise ReadError(self.path, f"the root element <Message> is in namespace {name.namespace!r}; "
                            "census returns use no namespace", _srcline(root))

    def _syntax_error(self, exc: etree.XMLSyntaxError) -> ReadError:
        # With entities unresolved lxml can report a vague "no element found"; its log has the real cause.
        # The log can hold earlier parses' errors too, so it is consulted only then, and its last entry.
        msg, line = exc.msg or str(exc), exc.lineno or None
        if not line:
            entries = [e for e in exc.error_log if e.level >= etree.ErrorLevels.ERROR]
            if entries:
                msg, line = entries[-1].message, entries[-1].line or None
        msg = re.sub(r", line \d+, column \d+$", "", msg.strip()).strip()
        problem = _syntax_problem(msg)
        if problem.startswith(_TOO_LARGE) and not self.wide:
            # libxml2 names the line where it gave up, which can be far past a huge attribute.
            line = _huge_value_line(self.path) or line
        return ReadError(self.path, problem, line)

    def _parse(self, fh: BinaryIO) -> None:
        self.source = _Counting(fh, self.tick)
        # The root was found to be a plain <Message> with no DOCTYPE (_check_root): only ends matter.
        events = etree.iterparse(self.source, events=("end",), tag=("Header", "{*}Child"), **_SAFE)
        try:
            for _, elem in events:
                tag = elem.tag
                if tag == "Child":
                    self._child(elem)
                elif tag == "Header":
                    if elem.getparent() is not None and elem.getparent().tag == "Message":
                        self._header_elem(elem)
                elif tag[-6:] == "}Child":  # a Child in a namespace: not census data, reported and freed
                    self._drop(elem, None)
                self.source.mark = self.source.total
        except etree.XMLSyntaxError as exc:
            raise self._syntax_error(exc) from None
        except (ValueError, LookupError) as exc:  # e.g. an unknown encoding declaration
            raise ReadError(self.path, f"cannot decode the file: {exc}") from None
        except _Stalled:
            raise ReadError(self.path, f"more than {_MAX_GAP // 2**20} MiB without a complete <Child> "
                            f"(the last one read was number {self.n_children}); a census child takes a few "
                            "KiB, so the file is refused rather than held in memory") from None
        self._flush()
        root = events.root
        if root is None or root.tag != "Message":
            got = f"<{etree.QName(root.tag).localname}>" if root is not None else "no element"
            raise ReadError(self.path, f"the root element is {got}; a CIN census return starts with <Message>")
        self._check_top(root)

    def _check_top(self, root: etree._Element) -> None:
        """Report anything at the Message and Children levels that is not Header, Children or Child."""
        headers = childrens = 0
        if root.attrib:
            self._attributes(root, None)
        self._stray(_OWN_TEXT(root), None)
        for sub in root:
            if sub.tag == "Header":
                headers += 1
                if headers > 1:
                    self._issue(_srcline(sub), "error", "header", None, "Header",
                                "a second <Header>; only the first is read", _flat_text(sub))
            elif sub.tag == "Children":
                childrens += 1
                if childrens > 1:
                    self._issue(_srcline(sub), "error", None, None, "Children",
                                "a second <Children>; its children are read as well")
                if sub.attrib:
                    self._attributes(sub, None)
                self._stray(_OWN_TEXT(sub), None)  # the tails of children read were checked in _flush
                for c in sub:
                    if c.tag != "Child":
                        self._unknown(c, "Children", None)
            else:
                self._unknown(sub, "Message", None)
        if headers == 0:
            self._issue(None, "error", None, None, "Header", "the file has no <Header>")
        if childrens == 0 and not self.blocks:
            self._issue(None, "error", None, None, "Children", "the file has no <Children>")
        elif self.n_children < spec.CHILD.min:
            self._issue(_srcline(next(root.iter("Children"), root)), "error", None, None, "Child",
                        "the return has no <Child>; a census return holds at least one")

    def _header_elem(self, elem: etree._Element) -> None:
        if self.header_line is not None:
            return
        self.header_line = _srcline(elem)
        for odd in _WITH_ATTRIBUTES(elem):
            self._attributes(odd, None)
        self._flush()
        for block in [b for b in elem.iter("Children") if self._was_read(b)]:
            where = block.getparent()
            self._issue(_srcline(block), "error", None, None, "Children",
                        f"<Children> is misplaced inside <{where.tag if where is not None else ''}>; it belongs "
                        "inside <Message>. Its children are read as the return's children")
            self._stray(_OWN_TEXT(block), None)
            block.text = None  # its values are in the tables: not to be read again as header content
            del block[:]
        self._stray(_STRAY_IN_HEADER(elem), None)
        for sub in elem.iter():
            if isinstance(sub.tag, str):
                self.header_lines.setdefault(sub.tag, _srcline(sub))
        row = _blank("")
        self._fill(elem, self.dispatch["Header"], row, None, (), {})
        self.header_row = {c: row[i] for c, i in _LAYOUT[""].items() if row[i] is not None}
        claimed = self.header_row.get("Year")  # as _claimed_year reads it first
        if self.year_hint is None and claimed is not None and re.fullmatch(r"\d{4}", claimed):
            self.year_hint = spec.year_from_reference(int(claimed))
        if self.dispatch is not _DISPATCH_SLOW:
            self.dispatch, self.unmarked = _dispatch_for(self.year_hint)
        if not "".join(self.texts).isascii():
            self._mojibake(elem.iter(), None)
        self.texts.clear()  # the header's values: its text was searched above

    def _child(self, elem: etree._Element) -> None:
        parent = elem.getparent()
        if parent is not self.batch_parent:
            # A <Children> block is read wherever it sits (reported in _header_elem if misplaced there),
            # unless it is inside a child, whose values already report it.
            if parent is None or parent.tag != "Children" or any(a.tag == "Child" for a in parent.iterancestors()):
                self._drop(elem, None)
                return
            self._flush()
            self.batch_parent = parent
            if not self._was_read(parent):
                self.blocks.append(parent)
        self.n_children += 1
        n = self.n_children
        if self.wanted is None or n in self.wanted:
            row = self.blank_child.copy()
            self._add_row("children", (n,), _srcline(elem), row)
            self._fill(elem, self.dispatch["Child"], row, n, (n,), {})
        self.batch_last = elem
        self.batch_count += 1
        if self.batch_count >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        """Free the children read so far, after checking them for attributes (one XPath per batch)."""
        parent, last = self.batch_parent, self.batch_last
        if parent is None or last is None:
            return
        end = parent.index(last) + 1
        # An attribute needs an '='; when the bytes read so far hold none beyond the declaration's
        # (in any ASCII-compatible encoding or UTF-16), there is nothing to look for.
        eq = self.source.eq if self.source is not None else 1
        odd = _ATTRIBUTED(parent, end=end) if eq > self.declared_eq or not self.eq_means_equals else []
        if end != self.batch_count:  # something other than <Child> sits among them
            for prev in parent[:end]:
                if prev.tag != "Child":
                    self._unknown(prev, "Children", None)
        # Text beside elements: the batch's text (tails included) without its XML whitespace is
        # exactly the values stored, in order, unless something is beside them (or a value has other
        # spaces, which strip() removes, or an issue was raised); only then is the batch searched for
        # it, element by element. Compared as UTF-8 bytes: translate() drops the spaces in C.
        stray = []
        values = "".join(self.texts) if self.check_text else ""
        if self.check_text and (self.batch_issues or b"".join(
                [etree.tostring(e, method="text", encoding="utf-8") for e in parent[:end]]).translate(None, _XML_SPACE_BYTES)
                != values.encode().translate(None, _XML_SPACE_BYTES)):
            stray = _STRAY(parent, end=end)
            for prev in parent[:end]:  # text between the children, which leaves the tree with them
                tail = prev.tail
                if tail is not None and tail.strip(_XML_SPACE):
                    self._stray([tail], None, prev)
        # Mis-encoded text is never ASCII: most batches are, and are passed over by one test in C.
        garbled = not values.isascii() and _MOJIBAKE.search(values) is not None
        if odd or stray or garbled:
            kids = [e for e in parent[:end] if e.tag == "Child"]
            number = {e: self.n_children - len(kids) + 1 + i for i, e in enumerate(kids)}

            def child_of(el: etree._Element) -> int | None:
                top = el if el.getparent() is parent else next(a for a in el.iterancestors() if a.getparent() is parent)
                return number.get(top)

            for el in odd:
                self._attributes(el, child_of(el))
            self._stray(stray, child_of)
            if garbled:
                self._mojibake(chain.from_iterable(e.iter() for e in parent[:end]), child_of)
        del parent[:end]
        self.batch_last = None
        self.batch_count = 0
        self.texts.clear()
        self.batch_issues = 0

    def _walker(self) -> Callable[[etree._Element, Dispatch, Row, int | None, tuple[int, ...], dict[Any, Any]], None]:
        """Build the reader's hot loop, ``fill(elem, disp, row, child, keys, counters)``: walk ``elem``'s
        sub-elements as ``disp`` describes them, filling ``row`` and new rows. A closure, so that the
        state it touches for every element is at hand rather than looked up on ``self`` each time."""
        same = self.same
        seen = self.texts.append
        store = self.store
        restricted = self.restricted
        leaf, odd_item = self._leaf, self._odd_item

        def fill(elem: etree._Element, disp: Dispatch, row: Row, child: int | None, keys: tuple[int, ...],
                 counters: dict[Any, Any]) -> None:
            # Plain values (most elements) take the first branch and nothing else.
            leaves, tags, node = disp
            subs = elem[:]  # a list made in C: quicker to walk than the element's own iterator
            if not subs:  # text beside elements is found by _STRAY; text instead of them, here
                text = elem.text
                if text is not None and not text.isspace():
                    self._issue(_srcline(elem), "error", None, child, node.name,
                                f"<{node.name}> holds text where its elements belong", text.strip())
            last = -1  # the order key of the latest element in order (see _dispatch)
            once: dict[str, int] | None = None  # elements other than values that may appear once, seen
            for sub in subs:
                tag = sub.tag
                col = leaves.get(tag)
                if col is None:
                    entry = tags.get(tag)
                    if entry is None:
                        self._unknown(sub, node.name, child)
                        continue
                    code, sn, target, detail, inner, order = entry
                    if order < last:
                        self._out_of_order(sub, sn, disp, last, child)
                    else:
                        last = order
                    if sn.max is not None and sn.kind != "leaf":  # a repeated value is reported when stored
                        if once is None:
                            once = {}
                        seen_before = once[sn.name] = once.get(sn.name, 0) + 1
                        if seen_before > sn.max:
                            self._issue(_srcline(sub), "error", None, child, sn.name,
                                        f"<{sn.name}> appears more than once inside <{node.name}>, which may hold "
                                        f"{'one' if sn.max == 1 else sn.max}; every one is read")
                    if code >= RESTRICTED:
                        # The line is wanted only if the year turns out not to have the element.
                        restricted[sn.name].append(0 if self.year_hint in sn.years else _srcline(sub) or 0)
                        code -= RESTRICTED
                    if code == TABLE:
                        n = counters[target] = counters.get(target, 0) + 1
                        new_keys = (*keys, n)
                        new = detail.copy()
                        tkeys, tlines, tvals = store[target]
                        tkeys.extend(new_keys)
                        line = sub.sourceline or 0
                        if line > 65535:  # see _srcline; inlined for the common case of whitespace text
                            first = sub.text
                            line = line - first.count("\n") if first is not None else _srcline(sub) or 0
                        tlines.append(line)
                        tvals.append(new)
                        fill(sub, inner, new, child, new_keys, {})
                        continue
                    if code == GROUP:
                        fill(sub, inner, row, child, keys, counters)
                        continue
                    if code == LIST:
                        name = detail.name
                        tkeys, tlines, tvals = store[target]
                        n = counters.get(target, 0)
                        found = 0
                        for item in sub[:]:
                            raw = item.text
                            if item.tag == name and raw is not None and not len(item):
                                text = raw.strip()
                                if text is not raw:  # strip() returns the very string when it removes nothing
                                    self._padded(item, sn.leaf, raw, text, child)
                                if text:
                                    n += 1
                                    found += 1
                                    tkeys.extend((*keys, n))
                                    line = item.sourceline or 0
                                    if line > 65535:  # see _srcline
                                        line -= raw.count("\n")
                                    tlines.append(line)
                                    tvals.append(text := same(text, text))
                                    seen(text)
                                    continue
                            one, n = odd_item(item, sn, name, child, target, keys, n)
                            found += one
                        counters[target] = n
                        if not found:
                            self._issue(_srcline(sub), "error", None, child, sn.name,
                                        f"<{sn.name}> holds no <{name}>; leave the group out instead",
                                        (sub.text or "").strip() or None)
                        continue
                    if code == OPAQUE:
                        # Accepted and not modelled; keep its values so that nothing read is lost.
                        self.extra.extend((f"{sn.name}/{_path(t.getparent().getparent() if t.is_tail else t.getparent(), sub)}",
                                           t.strip()) for t in _ALL_TEXT(sub))
                        continue
                    if code != LEAF:  # REDIRECT, SLOW_LEAF
                        leaf(sub, sn, target, row, child, keys, counters)
                        continue
                    col = target  # a restricted plain value
                elif col < last:
                    self._out_of_order(sub, tags[tag][1], disp, last, child)
                else:
                    last = col
                text = sub.text
                if text is not None and row[col] is None and not len(sub):
                    stripped = text.strip()
                    if stripped is not text:  # strip() returns the very string when it removes nothing
                        self._padded(sub, tags[tag][1], text, stripped, child)
                    text = stripped
                    if text:
                        # One object per distinct value: codes, dates and flags repeat endlessly.
                        row[col] = text = same(text, text)
                        seen(text)
                        continue
                leaf(sub, tags[tag][1], col, row, child, keys, counters)

        return fill

    def _padded(self, sub: etree._Element, node: spec.Node, raw: str, text: str, child: int | None) -> None:
        """Report spaces around a value where the format's type keeps them (codes and text), or that XML
        does not count as whitespace; the value read is the stripped one, so the rules check it."""
        if text and (node.type == "str" or node.codeset is not None or raw.strip(_XML_SPACE) != text):
            self._issue(_srcline(sub), "error", None, child, node.name,
                        f"<{node.name}> has spaces around its value, which the census format does not allow; "
                        f"it is read as {_quote(text)}", raw)

    def _mojibake(self, elements: Any, child_of: Any) -> None:
        """Warn of values that look decoded with the wrong encoding (``child_of`` as in :meth:`_stray`)."""
        for el in elements:
            text = el.text
            if isinstance(el.tag, str) and text is not None and _MOJIBAKE.search(text):
                name = etree.QName(el.tag).localname
                self._issue(_srcline(el), "warning", None, child_of(el) if child_of else None, name,
                            f"<{name}> holds text that looks wrongly decoded (such as 'Ã©' for 'é', or '\ufffd' for "
                            "a character that was lost); check the encoding the file was saved in", text.strip())

    def _out_of_order(self, sub: etree._Element, sn: spec.Node, disp: Dispatch, last: float,
                      child: int | None) -> None:
        """Report an element that comes after one the format puts after it (its value is still read)."""
        after = next(e[1].name for e in disp[1].values() if e[5] == last)
        self._issue(_srcline(sub), "error", None, child, sn.name,
                    f"<{sn.name}> is out of order inside <{disp[2].name}>: it comes after <{after}>, "
                    "which the census format puts after it")

    def _leaf(self, sub: etree._Element, sn: spec.Node, col: int, row: Row, child: int | None,
              keys: tuple[int, ...], counters: dict[Any, Any]) -> None:
        """Store a value in position ``col`` of its row, reporting whatever is odd about it (the slow
        path of :meth:`_fill`)."""
        text = self._value(sub, sn, child)
        if not text:
            return
        if sn.row is not None:
            row = self._redirected_row(sn, sub, keys, counters)[0]
        if row[col] is not None:
            self._issue(_srcline(sub), "error", None, child, sn.name,
                        f"<{sn.name}> appears more than once; the first value "
                        f"({shorten(row[col], _QUOTE)}) is kept", text)
            return
        row[col] = text
        self.texts.append(text)

    def _redirected_row(self, sn: spec.Node, sub: etree._Element, keys: tuple[int, ...],
                        counters: dict[Any, Any]) -> tuple[Row, tuple[int, ...]]:
        """Return the row (one per kind) that a 2012-13 initial/core assessment leaf belongs to, and its keys."""
        target = sn.row or {}
        slot = ("row", target["table"], target["kind"])
        if slot not in counters:
            table = target["table"]
            n = counters[table] = counters.get(table, 0) + 1
            new = _blank(table, {"kind": target["kind"]})
            self._add_row(table, (*keys, n), _srcline(sub), new)
            counters[slot] = (new, (*keys, n))
        return counters[slot]

    def _odd_item(self, item: etree._Element, sn: spec.Node, name: str, child: int | None, table: str,
                  keys: tuple[int, ...], n: int) -> tuple[int, int]:
        """Read a list's item that is not simply one value (the slow path of :meth:`_fill`), reporting
        what is odd; return (1 if it is an item of the list at all, else 0; the list's last number)."""
        if item.tag != name:
            self._unknown(item, sn.name, child)
            return 0, n
        text = self._value(item, sn.leaf, child)
        if not text:
            return 1, n
        self._add_row(table, (*keys, n + 1), _srcline(item), text)
        self.texts.append(text)
        return 1, n + 1

    def _value(self, sub: etree._Element, node: spec.Node, child: int | None) -> str:
        """Return the value an element holds, stripped ("" if none), reporting one that holds elements
        (its own text is still the value), nothing, or spaces the format does not allow around it."""
        name = node.name
        if len(sub):
            self._issue(_srcline(sub), "error", None, child, name,
                        f"<{name}> should hold a value, not elements", _flat_text(sub))
        raw = sub.text or ""
        text = raw.strip()
        if text and text is not raw:
            self._padded(sub, node, raw, text, child)
        if not text:
            self._issue(_srcline(sub), "error", None, child, name, f"<{name}> is empty")
        return text

    def _add_row(self, table: str, keys: tuple[int, ...], line: int | None, value: Any) -> None:
        """Append a row to ``table`` (the hot loop in _walker does the same inline)."""
        tkeys, tlines, tvals = self.store[table]
        tkeys.extend(keys)
        tlines.append(line or 0)
        tvals.append(value)

    def _was_read(self, block: etree._Element) -> bool:
        return any(block is b for b in self.blocks)

    def _stray(self, texts: list[Any], child_of: Any, owner: etree._Element | None = None) -> None:
        """Report text found beside elements, unless an issue about its element already holds it.

        ``texts`` are lxml text results (or plain strings, the tail of ``owner``); ``child_of`` maps an
        element to its child's number, or is None outside children.
        """
        for t in texts:
            el = owner if owner is not None else t.getparent()
            tail = owner is not None or t.is_tail
            container = el.getparent() if tail else el
            if container is None or not isinstance(container.tag, str):
                continue
            name = etree.QName(container.tag).localname
            if name in _LEAF_TAGS or (name not in _KNOWN_TAGS and name not in ("Message", "Children")):
                continue  # reported whole, this text included, as a leaf holding elements or an unknown element
            where = f"after <{etree.QName(el.tag).localname}>" if tail else "before its elements"
            self._issue(_srcline(el), "error", None, child_of(el) if child_of else None, name,
                        f"text inside <{name}> {where}; census elements hold elements or one value, not both",
                        str(t).strip() or str(t).strip(_XML_SPACE))  # spaces XML does not count as whitespace are text

    def _attributes(self, elem: etree._Element, child: int | None) -> None:
        name = etree.QName(elem.tag).localname
        self._issue(_srcline(elem), "error", None, child, name,
                    f"<{name}> has attributes ({', '.join(elem.attrib)}); census elements have none",
                    " ".join(elem.attrib.values()))

    def _drop(self, elem: etree._Element, child: int | None) -> None:
        """Report a misplaced element once, then free it so no later pass sees it again."""
        parent = elem.getparent()
        self._unknown(elem, etree.QName(parent.tag).localname if parent is not None else "", child)
        if parent is not None:
            parent.remove(elem)
        else:
            elem.clear(keep_tail=False)

    def _unknown(self, sub: etree._Element, parent: str, child: int | None) -> None:
        tag = sub.tag
        if not isinstance(tag, str) or (tag == "Children" and self._was_read(sub)):
            return  # a misplaced <Children> whose children were read is reported by _header_elem
        qname = etree.QName(tag)
        name = qname.localname
        homes = sorted(h for h in _HOMES.get(name, ()) if h and h != parent)
        if qname.namespace:
            problem = (f"element <{name}> in namespace {qname.namespace!r} inside <{parent}>; "
                       "census returns use no namespace")
        elif homes:
            problem = f"<{name}> is misplaced inside <{parent}>; it belongs inside <{'> or <'.join(homes)}>"
        else:
            problem = f"unknown element <{name}> inside <{parent}>"
        self._issue(_srcline(sub), "error", None, child, name, problem, _flat_text(sub))

    def _issue(self, line: int | None, severity: str, table: str | None, child: int | None,
               element: str | None, problem: str, value: Any = None) -> None:
        self.issues.append((line, severity, table, child, None, element, problem, value))
        self.batch_issues += 1

    def _locate_values(self) -> None:
        """Point issues about bad values at the value's own line, re-reading only the children concerned."""
        locator = _Locator(self.path, self.override)
        locator.wanted = {keys[0] for _, keys, _ in self.pending}
        with locator._open() as fh:
            locator._parse(fh)
        locator._fill = _spent
        for i, keys, column in self.pending:
            line = locator.value_lines.get((keys, column))
            if line is not None:
                self.issues[i] = (line, *self.issues[i][1:])

    # -- the year ---------------------------------------------------------------------------

    def _settle_year(self) -> str:
        fits = frozenset(spec.YEARS)
        clues: dict[str, frozenset[str]] = {}
        for name, lines in self.restricted.items():
            if not lines:
                continue
            node = _node_named(name)
            fits = fits & node.years
            clues[name] = node.years
        claimed = self._claimed_year()
        self._check_reference_date(self.override or claimed)
        if self.override:
            year = self.override
            if claimed and claimed != year:
                self._issue(self.header_line, "warning", None, None, "Year",
                            f"the header says {claimed}; read as {year} as asked")
        elif claimed in spec.YEARS:
            year = claimed
        elif claimed:
            raise ReadError(self.path, f"census year {claimed} is not supported "
                            f"(supported: {spec.YEARS[0]} to {spec.YEARS[-1]}); pass year= to read it as another",
                            self.header_line)
        elif fits:
            year = max(y for y in fits if y in spec.SUPPORTED_YEARS) if fits & set(spec.SUPPORTED_YEARS) else max(fits)
            self._issue(self.header_line, "error", None, None, "Year",
                        f"the header gives no census year; {year} was assumed from the file's structure")
        else:
            raise ReadError(self.path, "the header gives no census year and the structure fits none; "
                            "pass year= to choose one")
        odd = sorted(f"<{n}> ({spec.describe_years(ys)})" for n, ys in clues.items() if year not in ys)
        if odd:
            # Values of the year that were read without a note (see _dispatch) count as clues too.
            for node, table, col in self.unmarked:
                if any(row[col] is not None for row in self.store[table][2]):
                    fits = fits & node.years
            self._issue(self.header_line, "error", None, None, "Year",
                        f"the file is read as {year}, but it uses {', '.join(odd)}; "
                        + (f"its structure fits {spec.describe_years(fits)}" if fits
                           else "no single census year has all of its elements"))
        return year

    def _claimed_year(self) -> str | None:
        return self._year_of_year() or self._year_of_reference()

    def _year_of_year(self) -> str | None:
        """Return the census year the header's <Year> names, if it is a year."""
        raw = self.header_row.get("Year")
        return spec.year_from_reference(int(raw)) if raw is not None and re.fullmatch(r"\d{4}", raw) else None

    def _year_of_reference(self) -> str | None:
        """Return the census year the header's <ReferenceDate> falls in, if it is a date."""
        ref = pd.to_datetime(self.header_row.get("ReferenceDate"), format="%Y-%m-%d", errors="coerce")
        if ref is not None and not pd.isna(ref):
            return spec.year_from_reference(ref.year + (1 if ref.month > 3 else 0))
        return None

    def _check_reference_date(self, year: str | None) -> None:
        """Report a <ReferenceDate> in another census year than <Year>'s: the census window follows one of them."""
        named, dated = self._year_of_year(), self._year_of_reference()
        if named and dated and named != dated:
            how = "as asked" if self.override else "as <Year> says"
            self._issue(self.header_lines.get("ReferenceDate", self.header_line), "error", "header", None,
                        "ReferenceDate", f"<ReferenceDate> {self.header_row['ReferenceDate']} falls in the {dated} "
                        f"census but <Year> {self.header_row['Year']} names {named}; read as {year} {how}",
                        self.header_row["ReferenceDate"])

    def _check_restricted(self, year: str) -> None:
        for name, lines in self.restricted.items():
            node = _node_named(name)
            if year in node.years:
                continue
            problem = (f"<{name}> is not part of the {year} census "
                       f"(it belongs to {spec.describe_years(node.years)})")
            for line in lines:
                self._issue(line, "error", None, None, name, problem)

    # -- typing -------------------------------------------------------------------------------

    def _frame(self, table: str, year: str) -> pd.DataFrame:
        """Type one table's extracted values as ``year`` says, reporting what does not fit."""
        keys = spec.TABLE_KEYS[table]
        key_tuples, lines, vals = self.store.pop(table)
        key_array = np.frombuffer(key_tuples, dtype=np.int64).reshape(-1, len(keys)) if key_tuples else \
            np.empty((0, len(keys)), dtype=np.int64)
        data: dict[str, Any] = {k: key_array[:, i].copy() for i, k in enumerate(keys)}
        del key_array, key_tuples
        ctx = _FrameContext(table, data, np.frombuffer(lines, dtype=np.int64).copy() if lines else
                            np.empty(0, dtype=np.int64))
        del lines
        layout = _LAYOUT.get(table)
        # Rows laid end to end: a column is then every width-th value, a slice made in C.
        flat = vals if layout is None else list(chain.from_iterable(vals))
        del vals
        width = 1 if layout is None else len(layout)
        if spec.has_kind_column(table):
            kind = pd.Categorical(flat[layout["kind"]::width], categories=spec.ASSESSMENT_KINDS)
            data["kind"] = kind
            ctx.continuous = np.asarray(kind == "continuous")
        for node in spec.value_columns(table):
            col = node.column
            values = flat[layout[col]::width] if layout is not None else flat
            # Values are never empty strings, so truth is presence.
            if year not in spec.column_years(table, col) and not any(values):
                continue  # a column this year does not have, and no value for it either
            raw = pd.Series(values, dtype=object)
            data[col] = self._typed(raw, raw.to_numpy().astype(bool), node, year, ctx)
        del flat
        data["line"] = pd.array(ctx.line, dtype="Int64")
        data["line"][ctx.line == 0] = pd.NA
        return pd.DataFrame(data)

    def _typed(self, raw: pd.Series, present: np.ndarray, node: spec.Node, year: str,
               ctx: "_FrameContext") -> pd.Series:
        if node.min and year in node.years and node.row is None:
            missing = ~present
            if ctx.continuous is not None:
                missing &= ctx.continuous
            for i in np.flatnonzero(missing):
                self._issue(int(ctx.line[i]) or None, "error", ctx.table, int(ctx.data["child"][i]), node.name,
                            f"<{node.name}> is missing")
        typed, bad = _convert_distinct(raw, node, year, present)
        if bad is not None and bad.any():
            key_cols = [ctx.data[k] for k in spec.TABLE_KEYS[ctx.table]]
            located = ctx.table not in _LIST_TABLES  # a list item's row line is already the value's line
            unquotable = []
            for i in np.flatnonzero(bad):
                v = raw.iat[i]
                if located:
                    self.pending.append((len(self.issues), tuple(int(c[i]) for c in key_cols), node.column))
                self._issue(int(ctx.line[i]) or None, _bad_value_severity(node, str(v)), ctx.table,
                            int(ctx.data["child"][i]), node.name, _bad_value_problem(node, str(v), year), v)
                if _unquotable(node, str(v)):
                    unquotable.append(i)
            if unquotable:
                typed = _without(typed, unquotable)
        return typed

    def _bad_rows(self, df: pd.DataFrame, mask: np.ndarray, table: str, node: spec.Node, problem: str) -> None:
        for i in np.flatnonzero(mask):
            self._issue(_line(df, i), "error", table, int(df["child"].iat[i]), node.name, problem)

    def _check_required_tables(self, tables: dict[str, pd.DataFrame]) -> None:
        children = tables["children"]
        for node in spec.CHILD.children:
            if node.kind == "table" and node.min and node.table:
                have = set(tables[node.table]["child"])
                lacking = ~children["child"].isin(have).to_numpy()
                self._bad_rows(children, lacking, "children", node, f"the child has no <{node.name}>")

    def _header(self, year: str) -> Header:
        values: dict[str, Any] = {}
        for node in spec.HEADER.walk():
            if node.kind != "leaf":
                continue
            raw = self.header_row.get(node.name)
            if raw is None:
                if node.min and year in node.years:
                    self._issue(self.header_line, "error", "header", None, node.name,
                                f"the header has no <{node.name}>")
                values[node.name] = None
                continue
            typed, bad = convert(pd.Series([raw], dtype="object"), node, year)
            if bad is not None and bad.any():
                self._issue(self.header_lines.get(node.name, self.header_line), _bad_value_severity(node, raw),
                            "header", None, node.name, _bad_value_problem(node, raw, year), raw)
                if _unquotable(node, raw):
                    typed = _without(typed, [0])
            v = typed.iat[0]
            if node.type == "datetime" and not pd.isna(v):
                v = pd.Timestamp(raw)  # keep a UTC offset the file gives (columns drop it)
            values[node.name] = None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)
        return Header(
            collection=values["Collection"],
            year=values["Year"],
            reference_date=values["ReferenceDate"],
            la=values["LEA"],
            source_level=values["SourceLevel"],
            software=values["SoftwareCode"],
            release=values["Release"],
            serial=values["SerialNo"],
            datetime=values["DateTime"],
            extra=(*((f"Source/{n}", self.header_row[n]) for n in _HEADER_UNMODELLED if n in self.header_row),
                   *self.extra),
        )


def _spent(*_: Any) -> None:
    raise RuntimeError("a _Reader reads once")


class _Stalled(Exception):
    """Too many bytes read without a complete child: raised through lxml to stop the parse."""


class _Counting:
    """A binary file that counts the '=' bytes it hands over (a cheap test for attributes), and
    stops the parse when ``_MAX_GAP`` bytes pass without the reader marking progress: elements
    that are never a ``<Child>`` would otherwise pile up in memory."""

    def __init__(self, fh: BinaryIO, tick: Callable[[int], Any] | None = None) -> None:
        self.fh = fh
        self.tick = tick
        self.eq = 0
        self.total = 0
        self.mark = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.eq += data.count(b"=")
        self.total += len(data)
        if self.tick is not None:
            self.tick(len(data))
        if self.total - self.mark > _MAX_GAP:
            raise _Stalled()
        return data


class _FrameContext:
    """What typing a table's columns needs to know about its rows."""

    def __init__(self, table: str, data: dict[str, Any], line: np.ndarray) -> None:
        self.table = table
        self.data = data
        self.line = line
        self.continuous: np.ndarray | None = None


class _Locator(_Reader):
    """A reader that notes the line of each value it stores, for :meth:`_Reader._locate_values`."""

    def __init__(self, path: Path, year: str | None) -> None:
        super().__init__(path, year)
        self.dispatch = _DISPATCH_SLOW  # every value through _leaf below
        self.check_text = False  # the first pass reported what there is to report
        self.value_lines: dict[tuple[tuple[int, ...], str], int] = {}

    def _leaf(self, sub: etree._Element, sn: spec.Node, col: int, row: Row, child: int | None,
              keys: tuple[int, ...], counters: dict[Any, Any]) -> None:
        if (sub.text or "").strip():
            target, own = self._redirected_row(sn, sub, keys, counters) if sn.row is not None else (row, keys)
            if target[col] is None:
                self.value_lines[(own, sn.column)] = _srcline(sub)
        super()._leaf(sub, sn, col, row, child, keys, counters)


def _huge_value_line(path: Path) -> int | None:
    """Return the line where the first run of more than ``_MAX_VALUE`` bytes without a '<' starts.

    Neither a value nor an attribute can hold a '<', so that run is the value libxml2 refused.
    """
    newlines, run, start = 0, 0, 1
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            first = chunk.find(b"<")
            if run + (len(chunk) if first < 0 else first) > _MAX_VALUE:
                return start
            if first < 0:
                run += len(chunk)
            else:
                last = chunk.rfind(b"<")
                start = newlines + chunk.count(b"\n", 0, last) + 1
                run = len(chunk) - last - 1
            newlines += chunk.count(b"\n")
    return None


def _declaration_line(text: str) -> int | None:
    """Return the line of a DOCTYPE or ENTITY declaration in the prologue at the start of ``text``.

    None when the prologue has none, or when ``text`` ends inside it (the parser's own check of the
    document's DOCTYPE then decides, without a line).
    """
    pos = 1 if text.startswith("\ufeff") else 0
    while match := _PROLOGUE_ITEM.match(text, pos):
        pos = match.end()
    if _UNSAFE_DECLARATION.match(text, pos):
        return text.count("\n", 0, pos) + 1
    return None


def _srcline(elem: etree._Element) -> int | None:
    """Return the element's line, undoing libxml2's count past line 65535.

    Beyond 65535 libxml2 takes an element's line from its first child node (or the next one), whose
    line is where that text *ends*: one line late for ``<Child>`` followed by a newline.
    """
    line = elem.sourceline
    if line is not None and line > 65535:
        text = elem.text
        if text is not None:
            return line - text.count("\n")
        if len(elem):
            return _srcline(elem[0])
        tail = elem.tail
        if tail:
            return line - tail.count("\n")
    return line


def _take(ids: np.ndarray, child: pd.Series) -> list[Any]:
    """Return the LAchildID of each child number (None where there is none)."""
    return [None if pd.isna(c) or not 0 < c <= len(ids) else ids[int(c) - 1] for c in child]


def convert(raw: pd.Series, node: spec.Node, year: str,
            present: np.ndarray | None = None) -> tuple[pd.Series, np.ndarray | None]:
    """Type a column of raw strings as ``node`` says; return it with a mask of unconvertible values.

    ``present`` (where ``raw`` has a value) may be given when already known.
    """
    if present is None:
        present = raw.notna().to_numpy()
    t = node.type
    if t == "date":
        typed = _iso_dates(raw, present)
        if typed is None:
            # pandas reads "today", "now" and one-digit months even with a format: only xs:date passes.
            ok = raw.astype("object").str.fullmatch(_DATE).fillna(False).to_numpy(dtype=bool)
            typed = pd.to_datetime(raw.where(ok), format="%Y-%m-%d", errors="coerce").astype(VALUE_DTYPES[t])
        return typed, present & typed.isna().to_numpy()
    if t == "datetime":
        ok = raw.astype("object").str.fullmatch(_DATETIME).fillna(False).to_numpy(dtype=bool)
        typed = pd.to_datetime(raw.where(ok), format="ISO8601", errors="coerce")
        if getattr(typed.dt, "tz", None) is not None:
            typed = typed.dt.tz_localize(None)
        typed = typed.astype(VALUE_DTYPES[t])
        return typed, present & typed.isna().to_numpy()
    if t == "bool":
        if not present.any():
            return raw.astype(VALUE_DTYPES[t]), present
        mapped = raw.map(_BOOL_SPELLINGS)
        odd = present & mapped.isna().to_numpy()
        if odd.any():
            mapped[odd] = raw[odd].str.lower().map(_BOOLS)
        typed = mapped.astype(VALUE_DTYPES[t])
        return typed, present & typed.isna().to_numpy()
    if t in ("int", "gyear"):
        # Beyond 18 digits a whole number no longer fits the 64-bit column: it is an issue, not a crash.
        pattern = r"[+-]?\d{1,18}" if t == "int" else r"\d{4}"
        ok = raw.astype("object").str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool) if present.any() \
            else present
        typed = pd.to_numeric(raw.where(ok), errors="coerce").astype(VALUE_DTYPES[t])
        return typed, present & ~ok
    if node.codeset:
        valid = spec.codes(node.codeset, year if year in node.years else None)
        values = raw.astype("object")
        inset = values.isin(valid).to_numpy()
        extra = sorted({str(v) for v in values[present & ~inset]})
        typed = pd.Series(pd.Categorical(raw, categories=[*valid, *extra]), index=raw.index)
        return typed, present & ~inset
    typed = raw.astype(VALUE_DTYPES[t])
    bad = None
    if node.pattern:
        bad = present & ~typed.str.fullmatch(node.pattern).fillna(False).to_numpy(dtype=bool)
    if node.length is not None and present.any():
        long = present & (typed.str.len().fillna(0).to_numpy() > node.length)
        bad = long if bad is None else bad | long
    return typed, bad


def _convert_distinct(raw: pd.Series, node: spec.Node, year: str,
                      present: np.ndarray) -> tuple[pd.Series, np.ndarray | None]:
    """Do what :func:`convert` does, converting each distinct value once: dates, codes and flags
    repeat endlessly (free text, mostly distinct, is converted as it is)."""
    if node.type == "str" and not node.codeset:
        return convert(raw, node, year, present)
    codes, uniques = pd.factorize(raw.to_numpy(), use_na_sentinel=True)
    # The missing value takes the last slot, so that every row has a distinct value to take.
    codes[codes < 0] = len(uniques)
    distinct = pd.Series([*uniques, None], dtype=object)
    known = np.ones(len(distinct), dtype=bool)
    known[-1] = False
    typed, bad = convert(distinct, node, year, known)
    return (pd.Series(typed.array.take(codes), index=raw.index),
            None if bad is None else bad[codes])


def _iso_dates(raw: pd.Series, present: np.ndarray) -> pd.Series | None:
    """Parse a column of YYYY-MM-DD strings with numpy; None if any value is not exactly of that form."""
    values = raw.to_numpy(dtype=object)
    given = values[present]
    # numpy also reads "2013-02", "today" or "-013-02-03": only ten-character dates of years
    # 1000-9999 (which can only be YYYY-MM-DD) pass this way; anything else goes to pandas.
    if len(given) and set(map(len, given)) != {10}:
        return None
    if not present.all():
        values = np.where(present, values, "NaT")
    try:
        days = values.astype("datetime64[D]")
    except (ValueError, TypeError, OverflowError):
        return None
    known = days[present]
    if len(known) and not ((known >= _FIRST_DAY) & (known <= _LAST_DAY)).all():
        return None
    return pd.Series(days.astype("datetime64[s]"), index=raw.index)


def _quote(value: str) -> str:
    """Quote ``value`` for a problem's text: whole, or its first characters and its length when long."""
    return f"'{shorten(value, _QUOTE)}'"


def _unquotable(node: spec.Node, value: str) -> bool:
    """Tell whether ``value`` is longer than ``node``'s values can be and too long to quote whole.

    Such a value is kept only in its issue: in a table it would reach every display and output
    (a chart's labels, a workbook's cells) and make their cost grow with its length.
    """
    limit = node.max_length
    return limit is not None and len(value) > max(limit, _QUOTE)


def _without(typed: pd.Series, rows: list[int]) -> pd.Series:
    """Return ``typed`` with the values at positions ``rows`` missing (a code leaves the categories too)."""
    if isinstance(typed.dtype, pd.CategoricalDtype):
        gone = set(typed.iloc[rows].dropna())
        return typed.cat.remove_categories([c for c in typed.cat.categories if c in gone])
    typed = typed.copy()
    typed.iloc[rows] = None
    return typed


def _only_too_long(node: spec.Node, value: str) -> bool:
    """Tell whether free text ``value`` is wrong only in being longer than ``node``'s limit."""
    if node.type != "str" or node.codeset:
        return False
    return not node.pattern or re.fullmatch(node.pattern, value) is not None


def _bad_value_severity(node: spec.Node, value: str) -> str:
    """Grade a bad value: an error, but a warning when it is only past a provisional length limit (census.yaml)."""
    return "warning" if node.length_status != "V" and _only_too_long(node, value) else "error"


def _bad_value_problem(node: spec.Node, value: str, year: str) -> str:
    """Say what is wrong with ``value`` as a value of ``node`` in ``year``, quoting it (cut when long)."""
    problem = _bad_value_text(node, value, year)
    limit = node.max_length
    if limit is not None and len(value) > limit:
        problem += f"; no <{node.name}> is longer than {limit} characters"
        if node.length_status != "V":
            problem += " (a provisional limit)"
        if _unquotable(node, value):
            problem += ", so the value is kept only in this issue, not in the tables"
    return problem


def _bad_value_text(node: spec.Node, value: str, year: str) -> str:
    quoted = _quote(value)
    t = node.type
    if t == "date":
        return f"<{node.name}> {quoted} is not a valid date (YYYY-MM-DD)"
    if t == "datetime":
        return f"<{node.name}> {quoted} is not a valid date and time"
    if t == "bool":
        return f"<{node.name}> {quoted} is not true, false, 1 or 0"
    if t in ("int", "gyear"):
        return f"<{node.name}> {quoted} is not {'a whole number' if t == 'int' else 'a four-digit year'}"
    if node.codeset:
        problem = f"<{node.name}> {quoted} is not a valid {node.codeset.replace('_', ' ')} code in {year}"
        other = spec.code_years(node.codeset, value) & node.years
        if other:
            return problem + f" (it is valid in {spec.describe_years(other)})"
        near = [c for c in spec.codes(node.codeset, year) if c.lower() == value.lower()]
        return problem + (f" (did you mean '{near[0]}'?)" if near else "")
    if _only_too_long(node, value):
        return f"<{node.name}> {quoted} is too long"
    return f"<{node.name}> {quoted} does not match the pattern {node.pattern}"


def _line(df: pd.DataFrame, i: int) -> int | None:
    v = df["line"].iat[i]
    return None if pd.isna(v) else int(v)


def _node_named(name: str) -> spec.Node:
    for n in spec.nodes():
        if n.name == name:
            return n
    raise KeyError(name)


def _flat_text(elem: etree._Element) -> str | None:
    # Untruncated: an unknown element's values must stay findable in the issues (nothing lost).
    text = " ".join(t.strip() for t in elem.itertext() if t.strip())
    return text or None


def _path(leaf: etree._Element, top: etree._Element) -> str:
    names: list[str] = []
    while leaf is not None and leaf is not top:
        names.append(etree.QName(leaf.tag).localname)
        leaf = leaf.getparent()
    return "/".join(reversed(names))


def _utf16(head: bytes) -> str | None:
    """Name the UTF-16 codec that the first bytes suggest, if they suggest one."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head[:1] == b"<" and head[1:2] == b"\x00":
        return "utf-16-le"
    if head[:1] == b"\x00" and head[1:2] == b"<":
        return "utf-16-be"
    return None


def _syntax_problem(msg: str) -> str:
    low = msg.lower()
    if "depth" in low:
        return f"the elements are nested too deeply ({msg})"
    if "huge" in low or "xmlsax2characters" in low:
        return f"{_TOO_LARGE} ({msg})"
    if "entity" in low:
        return f"the file refers to an entity that census returns do not define ({msg})"
    if "document is empty" in low or "start tag expected" in low:
        return f"the file is not XML ({msg})"
    if "premature end" in low or "extra content" in low or "not properly terminated" in low:
        return f"the file is truncated or malformed XML ({msg})"
    if "encoding" in low or "utf-8" in low or "bytes" in low:
        return f"the file's bytes do not match its encoding, UTF-8 unless it declares another ({msg})"
    return f"not well-formed XML: {msg}"
