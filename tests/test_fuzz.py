"""Fuzzing: mutated census returns either read into typed tables that lose nothing, or fail with a
``ReadError`` naming the file; ``validate`` never raises, and no rule errors, on what reads.

Mutants start from every hand-written fixture and from the first children of every embedded
sample, and are changed element by element (drop, duplicate, reorder, move, rename, corrupt a
value, insert junk, add attributes or comments) and then byte by byte (cut, flip, insert, delete).

The default run is small, derandomised (the same cases every run) and fast. The long run is
opt-in and random (new cases every run)::

    CINQA_FUZZ_EXAMPLES=50000 .venv/bin/python -m pytest tests/test_fuzz.py --runslow -k long \
        -p no:cacheprovider --hypothesis-show-statistics

``CINQA_FUZZ_EXAMPLES`` is the total number of cases of the long run (default 50,000), shared by
its tests in the proportions of :data:`LONG_SHARE`. A failure prints the mutations that caused it
(shrunk to the fewest) and the mutant's first bytes.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from datetime import timedelta
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from lxml import etree

import cinqa
from cinqa import read_return, spec
from cinqa.errors import ReadError
from cinqa.failures import FAILURE_COLUMNS
from cinqa.returns import ISSUE_COLUMNS, CensusReturn, column_dtype
from test_read import loaded_values, normal_xml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = sorted((ROOT / "tests" / "fixtures").glob("cin-*.xml"))
SAMPLES = sorted((ROOT / "data").glob("sample-*.xml"))
SAMPLE_CHILDREN = 4  # children kept from each sample: enough variety, still quick to read

DEFAULT_EXAMPLES = {"tree": 400, "bytes": 1600, "validate": 3}
LONG_SHARE = {"tree": 0.6, "bytes": 0.398, "validate": 0.002}
LONG_TOTAL = int(os.environ.get("CINQA_FUZZ_EXAMPLES", "50000"))

COMMON = dict(deadline=timedelta(seconds=30), print_blob=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DEFAULT = settings(derandomize=True, phases=[Phase.explicit, Phase.generate, Phase.shrink], **COMMON)
LONG = settings(derandomize=False, **COMMON)

TALLY: Counter = Counter()

pytestmark = pytest.mark.timeout(300)  # a hang fails the test instead of stalling the run


# -- bases --------------------------------------------------------------------------------------

_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)


def _trimmed(path: Path, keep: int) -> bytes:
    """Return ``path``'s return with only its first ``keep`` children (samples are trusted files)."""
    root = etree.parse(str(path), _PARSER).getroot()
    for children in root.iter("Children"):
        for child in children.findall("Child")[keep:]:
            children.remove(child)
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


@cache
def bases() -> tuple[tuple[str, bytes], ...]:
    """Every starting return, as (name, bytes)."""
    out = [(p.name, p.read_bytes()) for p in FIXTURES]
    out += [(f"{p.name}[:{SAMPLE_CHILDREN}]", _trimmed(p, SAMPLE_CHILDREN)) for p in SAMPLES]
    return tuple(out)


# -- strategies ---------------------------------------------------------------------------------

NAMES = sorted({n.name for n in spec.nodes()} | {a for n in spec.nodes() for a in n.aliases})
ANY_CODE = sorted({c for cs in ("gender", "sex", "ethnicity", "disability", "referral_source", "primary_need",
                                "reason_for_closure", "category_of_abuse", "assessment_factor", "la")
                   for c in spec.codes(cs)})

index = st.integers(min_value=0, max_value=10**6)  # taken modulo the number of candidates; shrinks to the first
names = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(NAMES).map(str.lower),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,20}", fullmatch=True),
    st.sampled_from(NAMES).map(lambda n: f"{{urn:fuzz}}{n}"),
)
dates = st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.integers(0, 9999), st.integers(0, 13),
                  st.integers(0, 32))
values = st.one_of(
    st.text(max_size=40),  # any Unicode, control characters included
    st.sampled_from(ANY_CODE),
    st.sampled_from(ANY_CODE).map(str.swapcase),
    st.sampled_from(ANY_CODE).map(lambda c: f" {c.lower()}\t"),
    dates,
    st.sampled_from(["2013-02-30", "2023-02-29", "2024-02-29", "0000-01-01", "9999-12-31", "2023-4-3",
                     "03/04/2023", "2023-04-03T00:00:00", "2023-04-03Z", "2023-04-03+01:00", "20230403",
                     "1677-09-21", "2262-04-12", "-2023-04-03", "2023-04"]),
    st.integers(min_value=-10**40, max_value=10**40).map(str),
    st.sampled_from(["1e308", "-0", "+7", "0x1F", "1_000", "١٢", "NaN", "inf", "nan", "None", "NaT", "<NA>",
                     "null", "NULL", "", " ", "TRUE", "True", "yes", "-1", "2", "ｔｒｕｅ"]),
    st.text(st.characters(codec="utf-8"), min_size=200, max_size=2000),
    st.builds(lambda c, n: c * n, st.sampled_from("A9 é\U0001F600"), st.integers(1000, 20000)),
)

TREE_OPS = st.one_of(
    st.tuples(st.just("drop"), index),
    st.tuples(st.just("duplicate"), index),
    st.tuples(st.just("swap"), index),
    st.tuples(st.just("shuffle"), index, st.randoms(use_true_random=False)),
    st.tuples(st.just("move"), index, index, index),
    st.tuples(st.just("rename"), index, names),
    st.tuples(st.just("value"), index, values),
    st.tuples(st.just("value"), index, values),
    st.tuples(st.just("empty"), index),
    st.tuples(st.just("junk"), index, index, names, st.one_of(st.none(), values)),
    st.tuples(st.just("attribute"), index, st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), values),
    st.tuples(st.just("comment"), index, st.sampled_from(["comment", "pi", "cdata"])),
)
BYTE_OPS = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from([b"<", b">", b"&", b"</", b"<!--", b"]]>",
                                                                    b"<?x", b"&#1;", b"\x00", b"\xff\xfe"])),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "iso-8859-1"])


@st.composite
def mutants(draw: Any, byte_ops: bool) -> tuple[str, list[Any], str, list[Any]]:
    base = draw(st.sampled_from([name for name, _ in bases()]))
    tree = draw(st.lists(TREE_OPS, min_size=0 if byte_ops else 1, max_size=6))
    encoding = draw(ENCODINGS)
    raw = draw(st.lists(BYTE_OPS, min_size=1, max_size=3)) if byte_ops else []
    return base, tree, encoding, raw


# -- applying mutations -------------------------------------------------------------------------

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_escape(text: str) -> str:
    """Escape text for an XML element; characters XML 1.0 forbids become (forbidden) character references."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _ILLEGAL.sub(lambda m: f"&#x{ord(m.group(0)):X};", text)


def _pick(items: list[Any], i: int) -> Any:
    return items[i % len(items)] if items else None


def apply_tree_ops(data: bytes, ops: list[Any]) -> tuple[etree._Element, dict[str, str]]:
    """Mutate the parsed return; values go in as placeholders, replaced by escaped text after serialising."""
    root = etree.fromstring(data, _PARSER)
    texts: dict[str, str] = {}
    for op in ops:
        kind = op[0]
        everything = [e for e in root.iter() if isinstance(e.tag, str)]
        below = everything[1:]
        if kind == "drop" and below:
            e = _pick(below, op[1])
            e.getparent().remove(e)
        elif kind == "duplicate" and below:
            e = _pick(below, op[1])
            e.addnext(etree.fromstring(etree.tostring(e, with_tail=False)))
        elif kind == "swap" and below:
            e = _pick(below, op[1])
            nxt = e.getnext()
            if nxt is not None:
                nxt.addnext(e)
        elif kind == "shuffle":
            e = _pick(everything, op[1])
            kids = list(e)
            op[2].shuffle(kids)
            e[:] = kids
        elif kind == "move" and below:
            e = _pick(below, op[1])
            targets = [t for t in everything if t is not e and e not in t.iterancestors()]
            target = _pick(targets, op[2])
            e.getparent().remove(e)
            target.insert(op[3] % (len(target) + 1), e)
        elif kind == "rename":
            e = _pick(everything, op[1])
            e.tag = op[2]
        elif kind == "value":
            e = _pick([e for e in everything if not len(e)] or everything, op[1])
            texts[key := f"FUZZ{len(texts)}X"] = op[2]
            e.text = key
        elif kind == "empty":
            e = _pick(everything, op[1])
            e.text = None
            e[:] = []
        elif kind == "junk":
            e = _pick(everything, op[1])
            new = etree.Element(op[3])
            if op[4] is not None:
                texts[key := f"FUZZ{len(texts)}X"] = op[4]
                new.text = key
            e.insert(op[2] % (len(e) + 1), new)
        elif kind == "attribute":
            e = _pick(everything, op[1])
            texts[key := f"FUZZ{len(texts)}X"] = op[3]
            e.set(op[2], key)
        elif kind == "comment":
            e = _pick(below or everything, op[1])
            if op[2] == "comment":
                e.addprevious(etree.Comment(" fuzz note "))
            elif op[2] == "pi":
                e.addprevious(etree.ProcessingInstruction("fuzz", "x"))
            elif not len(e):
                e.text = etree.CDATA(e.text or "")
    return root, texts


def serialise(root: etree._Element, texts: dict[str, str], encoding: str) -> bytes:
    body = etree.tostring(root, encoding="unicode")
    for key, value in texts.items():
        body = body.replace(key, xml_escape(value).replace('"', "&quot;"))
    decl = f'<?xml version="1.0" encoding="{encoding}"?>\n'
    if encoding == "iso-8859-1":
        body = body.encode("ascii", "xmlcharrefreplace").decode("ascii")
    return (decl + body + "\n").encode(encoding)


def apply_byte_ops(data: bytes, ops: list[Any]) -> bytes:
    for op in ops:
        at = min(len(data), int(op[1] * len(data)))
        if op[0] == "cut":
            data = data[:at]
        elif op[0] == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([op[2]]) + data[at + 1:]
        elif op[0] == "insert":
            data = data[:at] + op[2] + data[at:]
        elif op[0] == "delete":
            data = data[:at] + data[at + op[2]:]
    return data


def build(case: tuple[str, list[Any], str, list[Any]]) -> bytes:
    base, tree_ops, encoding, byte_ops = case
    root, texts = apply_tree_ops(dict(bases())[base], tree_ops)
    return apply_byte_ops(serialise(root, texts, encoding), byte_ops)


def build_noted(case: tuple[str, list[Any], str, list[Any]]) -> bytes:
    data = build(case)
    note(f"mutant ({len(data)} bytes) starts {data[:600]!r}")
    return data


# -- what must hold -----------------------------------------------------------------------------

@cache
def expected_dtypes(table: str, year: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Map each value column a table may have in ``year`` to its dtype (and, for codes, the year's codes)."""
    out = {}
    for node in spec.value_columns(table):
        if node.column == "LAchildID":
            continue
        if node.codeset:
            valid = spec.codes(node.codeset, year if year in node.years else None)
            out[node.column] = ("category", frozenset(valid))
        else:
            out[node.column] = (column_dtype(node), frozenset())
    return out


def check_return(ret: CensusReturn, path: Path, data: bytes) -> None:
    """Assert the documented shape of a return read from a mutant, and that no value was lost."""
    assert ret.year in spec.YEARS and ret.path == path
    assert list(ret.tables) == list(spec.TABLE_KEYS)
    n_children = len(ret.children)
    for name, df in ret.tables.items():
        keys = list(spec.TABLE_KEYS[name])
        assert list(df.columns[: len(keys) + 1]) == [*keys, "LAchildID"] and df.columns[-1] == "line", name
        assert all(df[k].dtype == "int64" for k in keys), name
        assert str(df["LAchildID"].dtype) == "str" and df["line"].dtype == "Int64", name
        expected = expected_dtypes(name, ret.year)
        extra = set(df.columns) - {*keys, "LAchildID", "line", "kind"} - set(expected)
        assert not extra, (name, extra)
        for col in df.columns.intersection(list(expected)):
            dtype, codes = expected[col]
            assert str(df[col].dtype) == dtype, (name, col, str(df[col].dtype))
            assert codes <= set(df[col].cat.categories) if codes else True, (name, col)
        if len(df):
            assert not df.duplicated(keys).any(), name
            assert df["child"].between(1, n_children).all(), name
    assert list(ret.children["child"]) == list(range(1, n_children + 1))
    issues = ret.issues
    assert list(issues.columns) == list(ISSUE_COLUMNS)
    assert issues["line"].dtype == "Int64" and issues["child"].dtype == "Int64"
    if len(issues):
        assert issues["line"].dropna().between(1, data.count(b"\n") + 1).all(), issues["line"].tolist()
        assert issues["child"].dropna().between(1, n_children).all()
        assert issues["problem"].notna().all() and issues["severity"].isin(["error", "warning"]).all()
    assert_nothing_lost(ret, path)


def file_values(path: Path) -> tuple[Counter, Counter, Counter, dict[str, set[str]]]:
    """Count the file's leaf values as tests/test_read.py does; count apart all other text, inside
    containers, beside elements or after them (the reader keeps a mixed leaf's own text and reports the
    rest); and note each value's spellings in the file, which the issues quote."""
    leaves, mixed, beside, spelt = Counter(), Counter(), Counter(), {}
    for elem in etree.parse(str(path), _PARSER).iter():
        if not isinstance(elem.tag, str):
            continue
        text = (elem.text or "").strip()
        if text and elem.tag in CONTAINERS:
            beside[text] += 1
        elif text:
            value = normal_xml(elem.tag, text)
            if elem.tag in WHOLE_NUMBERS and _WHOLE.fullmatch(value):
                value = str(int(value))  # "007" is read as 7
            (mixed if len(elem) else leaves)[value] += 1
            spelt.setdefault(value, set()).add(text)
        tail = (elem.tail or "").strip()
        if tail and elem.getparent() is not None:
            beside[tail] += 1
    return leaves, mixed, beside, spelt


WHOLE_NUMBERS = frozenset(t for n in spec.nodes() if n.kind == "leaf" and n.type in ("int", "gyear")
                          for t in (n.name, *n.aliases))
_WHOLE = re.compile(r"[+-]?\d+")
CONTAINERS = frozenset({"Message", "Children"} | {t for n in spec.nodes() if n.kind in ("group", "table", "list")
                                                  for t in (n.name, *n.aliases)})


def spelt_as_xml(ret: CensusReturn) -> SimpleNamespace:
    """Return ``ret``'s header and non-empty tables with dates spelt YYYY-MM-DD, ready for loaded_values.

    test_read.normal spells a date with Timestamp.strftime, which writes the year 48 as "48" and
    raises for the year 0; those dates are spelt here first.
    """
    tables = {}
    for name, df in ret.tables.items():
        if len(df):
            dates = [c for c in df.columns if df[c].dtype.kind == "M"]
            tables[name] = df.assign(**{c: df[c].dt.strftime("%Y-%m-%d") for c in dates})
    header = ret.header
    ref = header.reference_date
    if ref is not None:
        header = dataclasses.replace(header, reference_date=f"{ref.year:04d}-{ref.month:02d}-{ref.day:02d}")
    return SimpleNamespace(header=header, issues=ret.issues, tables=tables)


def assert_nothing_lost(ret: CensusReturn, path: Path) -> None:
    """Every leaf value of the file is in the tables or in an issue (the count of tests/test_read.py)."""
    xml, mixed, beside, spelt = file_values(path)
    loaded, issues = loaded_values(spelt_as_xml(ret))
    invented = loaded - xml - mixed - beside  # the header's unmodelled sections keep text beside elements
    assert not invented, f"values in the tables that the file does not hold: {invented}"
    said = "\n".join(issues)
    for value, n in (xml - loaded).items():
        quoted = sum(said.count(raw) for raw in spelt[value] | {value})  # "FALSE" and "false" are one value
        assert quoted >= n or sum(v == value for v in issues) >= n, \
            f"{value[:80]!r} x{n} is neither in the tables nor in the issues"
    kept = "\n".join(v for _, v in ret.header.extra)  # what the header's unmodelled sections hold
    for text in beside:  # text inside a container or after an element: quoted by an issue
        assert text in said or text in kept, f"text {text[:80]!r} beside elements is in no issue"


def check_read(path: Path, data: bytes) -> CensusReturn | None:
    """Read the mutant: a typed return, or a ReadError that names the file. Anything else fails."""
    path.write_bytes(data)
    try:
        ret = read_return(path)
    except ReadError as err:
        TALLY["ReadError"] += 1
        assert err.path == str(path)
        assert str(err).startswith(f"{path}, line {err.line}: " if err.line else f"{path}: "), str(err)
        assert err.problem and "Traceback" not in err.problem
        assert err.line is None or 1 <= err.line <= data.count(b"\n") + 1, (err.line, str(err))
        return None
    TALLY["read"] += 1
    check_return(ret, path, data)
    return ret


# -- the reader ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mutant_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "mutant.xml"


@pytest.fixture(scope="module", autouse=True)
def tally(request: pytest.FixtureRequest):
    TALLY.clear()
    yield TALLY
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TALLY:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line("fuzz cases: " + ", ".join(f"{k} {v:,}" for k, v in sorted(TALLY.items())))


def tree_property(mutant_path: Path, case: Any) -> None:
    data = build_noted(case)
    TALLY["tree cases"] += 1
    ret = check_read(mutant_path, data)
    # Inside a CDATA section or a comment "&#x1F;" is plain text, not a character reference.
    if _ILLEGAL_REF.search(_VERBATIM.sub(b"", data.replace(b"\x00", b""))):
        assert ret is None, "a character XML forbids was accepted"


_ILLEGAL_REF = re.compile(rb"&#x(?:[0-8BCEF]|1[0-9A-F]|FFF[EF]);")
_VERBATIM = re.compile(rb"<!\[CDATA\[.*?\]\]>|<!--.*?-->", re.S)


def bytes_property(mutant_path: Path, case: Any) -> None:
    data = build_noted(case)
    TALLY["byte cases"] += 1
    check_read(mutant_path, data)


@settings(DEFAULT, max_examples=DEFAULT_EXAMPLES["tree"])
@given(case=mutants(byte_ops=False))
def test_reader_on_element_mutants(mutant_path: Path, case: Any) -> None:
    tree_property(mutant_path, case)


@settings(DEFAULT, max_examples=DEFAULT_EXAMPLES["bytes"])
@given(case=mutants(byte_ops=True))
def test_reader_on_byte_mutants(mutant_path: Path, case: Any) -> None:
    bytes_property(mutant_path, case)


@pytest.mark.slow
@pytest.mark.timeout(0)
@settings(LONG, max_examples=max(1, int(LONG_TOTAL * LONG_SHARE["tree"])))
@given(case=mutants(byte_ops=False))
def test_long_reader_on_element_mutants(mutant_path: Path, case: Any) -> None:
    tree_property(mutant_path, case)


@pytest.mark.slow
@pytest.mark.timeout(0)
@settings(LONG, max_examples=max(1, int(LONG_TOTAL * LONG_SHARE["bytes"])))
@given(case=mutants(byte_ops=True))
def test_long_reader_on_byte_mutants(mutant_path: Path, case: Any) -> None:
    bytes_property(mutant_path, case)


def test_mutations_change_the_file_and_can_break_it(mutant_path: Path) -> None:
    """The mutators do what they say: a corrupted value reaches the file, a cut breaks it."""
    name, data = bases()[0]
    corrupted = build((name, [("value", 0, "x\x01<&>")], "utf-8", []))
    assert b"x&#x1;&lt;&amp;&gt;" in corrupted
    assert check_read(mutant_path, corrupted) is None
    assert check_read(mutant_path, build((name, [("drop", 3)], "utf-8", []))) is not None
    assert check_read(mutant_path, build((name, [], "utf-8", [("cut", 0.5)]))) is None
    assert build((name, [], "utf-16", []))[:2] in (b"\xff\xfe", b"\xfe\xff")


# Found by a long run (fixed): text directly inside a container element was dropped without an issue
# (<Message>0</Message> first). Each case must end up in an issue's value.
STRAY_TEXT = {
    "inside-message": ("<Children>", "stray <Children>"),
    "inside-children": ("<Children>", "<Children>stray"),
    "inside-a-group": ("<Source>", "<Source>stray"),
    "inside-a-table-with-values": ("<CINdetails>", "<CINdetails>stray"),
    "instead-of-a-table's-values": ("<ReferralNFA>false</ReferralNFA>",
                                    "<ReferralNFA>false</ReferralNFA><Section47>stray</Section47>"),
    "instead-of-a-list's-items": ("<Disabilities>\n          <Disability>AUT</Disability>\n          "
                                  "<Disability>LD</Disability>\n        </Disabilities>", "<Disabilities>stray"
                                  "</Disabilities>"),
    "after-a-leaf": ("</LAchildID>", "</LAchildID>stray"),
}
# Spaces that XML does not count as whitespace (here an em space) are text too, reported as they are.
SPACE_TEXT = {
    "after-a-leaf": ("</LAchildID>", "</LAchildID>\u2003"),
    "between-children": ("</Child>", "</Child>\u00a0"),
    "inside-a-table": ("<CINdetails>", "<CINdetails>\u2003"),
}


def changed_fixture(tmp_path: Path, old: str, new: str, fixture: str = "cin-2023-24.xml") -> Path:
    """Write a copy of a fixture with its first ``old`` replaced by ``new``; return its path."""
    text = FIXTURES[[p.name for p in FIXTURES].index(fixture)].read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "changed.xml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize("old, new", STRAY_TEXT.values(), ids=STRAY_TEXT.keys())
def test_stray_text_is_reported(tmp_path: Path, old: str, new: str) -> None:
    values = read_return(changed_fixture(tmp_path, old, new)).issues["value"].dropna().astype(str)
    assert values.str.contains("stray").any(), "the stray text is in no issue"


@pytest.mark.parametrize("old, new", SPACE_TEXT.values(), ids=SPACE_TEXT.keys())
def test_unicode_spaces_beside_elements_are_reported(tmp_path: Path, old: str, new: str) -> None:
    issues = read_return(changed_fixture(tmp_path, old, new)).issues
    said = issues[issues["problem"].str.startswith("text inside")]
    assert said["value"].tolist() == [new.replace(old, "")]


# Found by a long run (fixed): a <Children> block misplaced inside <Header> was read as the return's
# children and reported as an unknown element with all their values, beside "the file has no
# <Children>"; inside the header's <Content> its values were kept in Header.extra as well. Now it is
# read once, as the children, and reported once as misplaced.
def children_inside_the_header(fixture: str, anchor: str) -> str:
    text = FIXTURES[[p.name for p in FIXTURES].index(fixture)].read_text(encoding="utf-8")
    block = re.search(r"\s*<Children>.*</Children>", text, re.S)
    assert block is not None and anchor in text
    text = text[: block.start()] + text[block.end():]
    return text.replace(anchor, anchor + block.group(0), 1)


@pytest.mark.parametrize("fixture, anchor", [("cin-2023-24.xml", "</Source>"), ("cin-2020-21.xml", "<Content>")],
                         ids=["in-header", "in-header-content"])
def test_a_misplaced_children_block_is_not_read_twice(tmp_path: Path, fixture: str, anchor: str) -> None:
    path = tmp_path / "misplaced.xml"
    path.write_text(children_inside_the_header(fixture, anchor), encoding="utf-8")
    ret = read_return(path)
    first = ret.children["LAchildID"].iat[0] if len(ret.children) else None
    if first is not None:  # read as children: then said nowhere else, and the file does have children
        assert not (ret.issues["problem"] == "the file has no <Children>").any()
        assert ret.issues["problem"].str.contains("<Children> is misplaced").sum() == 1
        assert not ret.issues["value"].dropna().astype(str).str.contains(first).any()
        assert not any(first in v for _, v in ret.header.extra)
    else:
        assert (ret.issues["element"] == "Children").any()


def test_text_inside_the_header_content_is_kept(tmp_path: Path) -> None:
    ret = read_return(changed_fixture(tmp_path, "<CBDSLevels>", "<CBDSLevels>stray", "cin-2020-21.xml"))
    assert ("Content/CBDSLevels", "stray") in ret.header.extra
    assert not ret.issues["value"].dropna().astype(str).str.contains("stray").any()  # kept once, not twice


def test_children_nested_in_a_child_are_reported_not_read(tmp_path: Path) -> None:
    nested = "<Children><Child><ChildIdentifiers><LAchildID>NESTED1</LAchildID></ChildIdentifiers></Child></Children>"
    ret = read_return(changed_fixture(tmp_path, "</ChildIdentifiers>", "</ChildIdentifiers>" + nested))
    assert "NESTED1" not in set(ret.children["LAchildID"])
    assert ret.issues["value"].dropna().astype(str).str.contains("NESTED1").sum() == 1


# Found by a long run (fixed): the reader took 0000-01-01 for a date (numpy has a year 0; xs:date and
# Python's datetime do not), and the Excel error report then failed with an internal error.
YEAR_ZERO = ("<PersonBirthDate>2015-06-01", "<PersonBirthDate>0000-01-01")


def year_zero_file(tmp_path: Path) -> Path:
    return changed_fixture(tmp_path, *YEAR_ZERO)


def test_year_zero_is_not_a_date(tmp_path: Path) -> None:
    ret = read_return(year_zero_file(tmp_path))
    assert ret.children["PersonBirthDate"].isna().iat[0]
    assert (ret.issues["element"] == "PersonBirthDate").any()


def test_a_year_zero_date_does_not_break_the_error_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cinqa.cli import app

    result = CliRunner().invoke(app, ["validate", str(year_zero_file(tmp_path)), "--xlsx", str(tmp_path / "e.xlsx")])
    assert result.exit_code in (0, 1), result.output
    assert (tmp_path / "e.xlsx").exists()


# Found by a long run (fixed): a whole number too large for 64 bits stopped the reader with a
# TypeError or OverflowError instead of an issue.
@pytest.mark.parametrize("number", ["10000000000000000000", "9" * 400])
def test_a_huge_whole_number_is_an_issue(tmp_path: Path, number: str) -> None:
    ret = read_return(changed_fixture(tmp_path, "<NumberOfPreviousCPP>0<", f"<NumberOfPreviousCPP>{number}<"))
    assert ret.cp_plans["NumberOfPreviousCPP"].isna().iat[0]
    assert (ret.issues["value"] == number).any()


# -- validate -----------------------------------------------------------------------------------


@st.composite
def validate_mutants(draw: Any) -> tuple[str, list[Any], str, list[Any]]:
    """Element-level mutants with many mutations each: one validation checks many at once."""
    base = draw(st.sampled_from([name for name, _ in bases()]))
    return base, draw(st.lists(TREE_OPS, min_size=5, max_size=25)), "utf-8", []


def validate_property(mutant_path: Path, case: Any) -> None:
    ret = check_read(mutant_path, build_noted(case))
    if ret is None:
        return
    TALLY["validated"] += 1
    v = cinqa.validate(ret)
    assert v.errored.empty, f"rules errored on a return the reader accepts:\n{v.errored.to_string()}"
    f = v.failures
    assert tuple(f.columns) == FAILURE_COLUMNS
    assert all(f[c].dtype == "Int64" for c in ("child", "episode", "item", "line"))
    assert f["severity"].isin(["error", "query"]).all()
    assert f["child"].dropna().between(1, len(ret.children)).all()
    TALLY["failing rows"] += len(f)
    # What the command line writes from it must be writable too.
    from cinqa.excel import write_error_report
    from cinqa.export import write_failures_csv

    write_failures_csv(f, mutant_path.with_suffix(".csv"))
    write_error_report(mutant_path.with_suffix(".xlsx"), f, ret)


@pytest.mark.timeout(600)
@settings(DEFAULT, max_examples=DEFAULT_EXAMPLES["validate"], deadline=None)
@given(case=validate_mutants())
def test_validate_on_element_mutants(mutant_path: Path, case: Any) -> None:
    validate_property(mutant_path, case)


@pytest.mark.slow
@pytest.mark.timeout(0)
@settings(LONG, max_examples=max(1, int(LONG_TOTAL * LONG_SHARE["validate"])), deadline=None)
@given(case=validate_mutants())
def test_long_validate_on_element_mutants(mutant_path: Path, case: Any) -> None:
    validate_property(mutant_path, case)
