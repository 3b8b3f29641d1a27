"""Build a census return with its children's identifiers typed into every other field.

The base fixture's children get distinctive identifiers (``LAchildID``, ``UPN``, ``FormerUPN``),
and those identifiers are then written into every other value of the file: every code of every
child, every value of the last child (dates and numbers too), the header's free values, an
element cinqa does not know, an attribute, and a duplicated child (so year-on-year comparisons
have a duplicate LAchildID to note). A pseudonymised output must hold none of them.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from hostile.corpus import BASE

IDENTIFIER_TAGS = ("LAchildID", "UPN", "FormerUPN")
_DATE_OR_NUMBER = re.compile(r"^\s*(\d{4}-\d{2}-\d{2}|[0-9.]+|true|false)\s*$")
_HEADER_FREE = ("LEA", "SoftwareCode", "Release", "SerialNo")


# Text a spreadsheet would run as a formula, one of each way a formula can start.
FORMULAS = ("=1+2", "+1+2", "-1+2", "@SUM(1,2)", "\t=1+2", "\r=1+2", '=HYPERLINK("http://127.0.0.1/x","y")')


def planted_return(payloads: Sequence[str] | None = None) -> tuple[bytes, list[str]]:
    """Return the planted file's bytes and every identifier planted in it.

    With ``payloads``, those texts are planted instead of the identifiers (the children keep
    the planted identifiers).
    """
    root = etree.fromstring(BASE)
    children = root.findall("./Children/Child")
    ids: list[str] = []
    for i, child in enumerate(children, start=1):
        known = child.find("./ChildIdentifiers")
        known.find("LAchildID").text = f"PLANTLA{i:03d}X"
        upn = known.find("UPN")
        if upn is None:
            upn = etree.SubElement(known, "UPN")
            known.insert(1, upn)
        upn.text = f"Z201PLANT{i:04d}"
        former = known.find("FormerUPN")
        if former is None:
            former = etree.Element("FormerUPN")
            known.insert(2, former)
        former.text = f"Y201PLANT{i:04d}"
        ids += [known.find("LAchildID").text, upn.text, former.text]
    planted = list(payloads) if payloads else ids
    turn = iter(range(10**9))
    for i, child in enumerate(children):
        everything = i == len(children) - 1
        for leaf in child.iter():
            if len(leaf) or leaf.tag in IDENTIFIER_TAGS or not isinstance(leaf.tag, str):
                continue
            if everything or not _DATE_OR_NUMBER.match(leaf.text or ""):
                leaf.text = planted[next(turn) % len(planted)]
    for i, tag in enumerate(_HEADER_FREE):
        for leaf in root.iter(tag):
            leaf.text = planted[i % len(planted)]
    first = children[0]
    unknown = etree.SubElement(first, "NickName")
    unknown.text = planted[1] if payloads else f"known as {ids[1]}"
    first.find("./ChildIdentifiers/PersonBirthDate").set("note", planted[2])
    first.getparent().append(copy.deepcopy(first))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8"), ids


def planted_files(folder: Path, payloads: Sequence[str] | None = None) -> tuple[Path, Path, list[str]]:
    """Write the planted return (2023-24) and the same children's return of the year before into ``folder``.

    Return the two paths, the later first, and the planted identifiers.
    """
    import cinqa

    data, ids = planted_return(payloads)
    later = folder / "planted.xml"
    later.write_bytes(data)
    ret = cinqa.read_return(later, year="2022-23")
    earlier = folder / "planted-2022-23.xml"
    cinqa.write_return(dataclasses.replace(ret, header=dataclasses.replace(ret.header, year=2023,
                                                                           reference_date=None)), earlier)
    return later, earlier, ids


def planted_teams(path: Path, ids: Sequence[str], teams: Sequence[str] | None = None) -> list[str]:
    """Write a lookup of the planted children to teams and workers at ``path``; return the workers' names.

    Each team is named after another child's identifier (or, with ``teams``, those texts are the
    teams), so a team name needs scrubbing; the workers' names are staff's personal data, which no
    pseudonymised output may hold.
    """
    import csv

    children = [i for i in ids if i.startswith("PLANTLA")]
    workers = [f"Wrkr Plantedname{n}" for n in range(1, len(children) + 1)]
    names = list(teams) if teams else [f"Team of {children[n - 1]}" for n in range(len(children))]
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["LAchildID", "team", "worker"])
        out.writerows([child, names[n % len(names)], worker] for n, (child, worker) in enumerate(zip(children, workers)))
    return workers


def unreadable_planted(folder: Path, planted: Path, ids: Sequence[str]) -> Path:
    """Write a copy of ``planted`` that cannot be read, whose parser error quotes the first planted identifier.

    An undefined entity named after the identifier ends the read with "Entity '<identifier>' not
    defined": the one message about the file has no return behind it to take identifiers from.
    """
    data = planted.read_bytes()
    at = data.index(b"<Ethnicity>") + len(b"<Ethnicity>")
    path = folder / "unreadable.xml"
    path.write_bytes(data[:at] + f"&{ids[0]};".encode() + data[at:])
    return path


def other_la(folder: Path, earlier: Path, ids: Sequence[str]) -> Path:
    """Write ``earlier`` again with an identifier as its LA, so comparing it with the planted return
    fails with a message that names both returns' LAs (the planted return's LA is an identifier too)."""
    text = earlier.read_text(encoding="utf-8")
    path = folder / "other-la.xml"
    path.write_text(re.sub(r"<LEA>[^<]*</LEA>", f"<LEA>{ids[4]}</LEA>", text, count=1), encoding="utf-8")
    return path
