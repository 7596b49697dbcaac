"""Pure helpers for replacement values: dummies per VR, date shifting, identifier matching."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

#: Text put where the profile asks for a dummy value ("D") of a text VR.
DUMMY_TEXT = "ANONYMIZED"

#: VRs whose values are free or short text (checked by "clean", replaced by "scrub").
TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})

_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"})
_BYTES_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})

_DUMMIES: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
    "DS": "0",
    "IS": "0",
    "CS": DUMMY_TEXT,
    "UR": "",
}

_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_DT = re.compile(
    r"^(\d{4})(\d{2})(\d{2})((?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?(?:[+-]\d{4})?)$"
)


def dummy_value(vr: str) -> object:
    """A non-empty dummy value valid for ``vr`` (the "D" action of PS3.15 Table E.1-1).

    UI and SQ are not handled here: UIDs are remapped, sequences cleaned item by item.

    Examples
    --------
    >>> dummy_value("PN"), dummy_value("DA"), dummy_value("US")
    ('ANONYMIZED', '19000101', 0)
    """
    if vr in TEXT_VRS:
        return DUMMY_TEXT
    if vr in _NUMERIC_VRS:
        return 0
    if vr in _BYTES_VRS:
        return b"\x00\x00"
    return _DUMMIES.get(vr, DUMMY_TEXT)


def _shift(year: int, month: int, day: int, days: int) -> str | None:
    try:
        shifted = dt.date(year, month, day) + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"


def shift_da(value: str, days: int) -> str | None:
    """Shift one DA value by ``days`` whole days; None if it is not a valid date.

    Accepts ``YYYYMMDD`` and the ACR-NEMA ``YYYY.MM.DD`` form; returns ``YYYYMMDD``.

    Examples
    --------
    >>> shift_da("20240301", -1), shift_da("2024.03.01", 1), shift_da("2024-03", 1)
    ('20240229', '20240302', None)
    """
    match = _DA.match(value.strip())
    if match is None:
        return None
    return _shift(int(match[1]), int(match[2]), int(match[3]), days)


def shift_dt(value: str, days: int) -> str | None:
    """Shift one DT value by ``days``, keeping time of day and UTC offset; None if invalid.

    Values with less than day precision (``YYYY``, ``YYYYMM``) cannot be shifted by days
    and give None, like malformed ones.

    Examples
    --------
    >>> shift_dt("20240301120000.5+0100", -1), shift_dt("2024", 1)
    ('20240229120000.5+0100', None)
    """
    match = _DT.match(value.strip())
    if match is None:
        return None
    date = _shift(int(match[1]), int(match[2]), int(match[3]), days)
    return None if date is None else date + match[4]


def shift_values(values: Iterable[str], vr: str, days: int) -> list[str] | None:
    """Shift every DA or DT value in ``values``; None if any of them is invalid."""
    shift = shift_da if vr == "DA" else shift_dt
    out: list[str] = []
    for value in values:
        shifted = shift(value, days)
        if shifted is None:
            return None
        out.append(shifted)
    return out


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


class IdentifierMatcher:
    """Finds a patient's name parts or identifiers inside free text.

    Heuristic used by the clean options: name parts of at least two characters match as
    whole words, case-insensitively; a name written without spaces between its parts in a
    non-Latin script (ideographic or phonetic PN groups, e.g. ``李^伟``) also matches as
    the joined string anywhere in the text; identifiers (patient IDs, accession number,
    birth date) match as substrings of the text with separators removed when they have
    four or more characters, and as whole words otherwise. It catches a name or ID typed
    into a description; it does not catch misspellings, initials or other people's names.

    Examples
    --------
    >>> m = IdentifierMatcher(names=["Doe^John"], ids=["A-12345"])
    >>> m.found("CT head john"), m.found("ref A12345/2"), m.found("CT head")
    (True, True, False)
    """

    def __init__(self, names: Iterable[str], ids: Iterable[str]) -> None:
        words: set[str] = set()
        substrings: set[str] = set()
        for name in names:
            for group in name.split("="):
                parts = [_TOKEN.findall(p.casefold()) for p in group.split("^")]
                tokens = [t for part in parts for t in part]
                words.update(t for t in tokens if len(t) >= 2 and not t.isdigit())
                joined = "".join(tokens)
                if len(joined) >= 2 and not joined.isascii():
                    substrings.add(joined)
        for raw in ids:
            compact = "".join(_TOKEN.findall(raw)).casefold()
            if len(compact) >= 4:
                substrings.add(compact)
            elif compact:
                words.add(compact)
        self._words = frozenset(words)
        self._substrings = frozenset(substrings)

    def __bool__(self) -> bool:
        return bool(self._words or self._substrings)

    def found(self, text: str) -> bool:
        """True if ``text`` contains one of the name parts or identifiers."""
        tokens = [t.casefold() for t in _TOKEN.findall(text)]
        if self._words.intersection(tokens):
            return True
        compact = "".join(tokens)
        return any(s in compact for s in self._substrings)
