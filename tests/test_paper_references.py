"""Figure references follow the pinned paper revision (``PAPER_REVISION``, docs/protocol.md).

Figure numbers moved between revisions of ePrint 2021/060: a "Fig. 16" written for an older
revision points at another figure of the pinned one. A CGGMP21 figure number that the pinned
revision does not use for what this code implements must say that it is a pre-2024 figure.
(Only references with "CGGMP" shortly before them are checked: other papers have figures too.)
"""

from __future__ import annotations

import re
from pathlib import Path

from mpcnode.core.params import PAPER_REVISION

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("mpcnode", "coordinator", "testing", "tests", "docs")

# Figures of revision 2024-10-21 that this code cites: keygen 6, aux info and refresh 7,
# presigning 8, identification 9, signing 10, Π^mod 12, Π^prm 13, Π^sch 22, Π^elog 23,
# Π^enc-elg 24, Π^aff-g 25, Π^fac 26, Π^aff-g* 27, Π^dec 28.
PINNED = {6, 7, 8, 9, 10, 12, 13, 22, 23, 24, 25, 26, 27, 28}
FIG = re.compile(r"Fig(?:ure|s?\.)\s*(\d+)")
BEFORE, AFTER = 400, 30  # characters around a reference that may say "pre-2024"
PAPER_NEAR = 80  # a reference is to CGGMP21 if "CGGMP" is this close before it


def _references() -> list[tuple[str, int, str]]:
    out = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".md") or path == Path(__file__).resolve():
                continue
            text = path.read_text(encoding="utf-8")
            for m in FIG.finditer(text):
                if "CGGMP" not in text[max(0, m.start() - PAPER_NEAR):m.start()]:
                    continue
                around = text[max(0, m.start() - BEFORE):m.end() + AFTER]
                out.append((str(path.relative_to(ROOT)), int(m.group(1)), around))
    return out


def test_every_figure_reference_is_in_the_pinned_revision_or_says_it_is_not() -> None:
    stale = [(path, n) for path, n, around in _references()
             if n not in PINNED and "pre-2024" not in around]
    assert stale == []


def test_the_spec_names_the_pinned_revision() -> None:
    spec = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert f"revision {PAPER_REVISION}" in spec
    assert "2021/060" in spec
