"""The state of one de-identification walk, and what the two walks share (the pydicom
one in :mod:`~medlabel.security.deid.deidentifier`, the encoded one in
:mod:`~medlabel.security.deid.encoded`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from medlabel.security.deid.elements import tag_key
from medlabel.security.deid.report import DeidAction
from medlabel.security.deid.values import IdentifierMatcher

#: UI attributes that name a class, syntax or coding scheme, not an instance: never remapped.
CLASS_UID_TAGS = frozenset(
    {
        0x00000002,
        0x00000003,
        0x00020002,
        0x00020010,
        0x00020012,
        0x00020100,
        0x00041510,
        0x00041512,
        0x00080016,
        0x0008001A,
        0x0008001B,
        0x00080062,
        0x0008010C,
        0x0008010D,
        0x00080117,
        0x00080118,
        0x00081150,
        0x04000010,
        0x04000510,
    }
)
#: VRs of attributes outside the table that need a look (in normal mode).
OTHER_VRS = frozenset({"SQ", "UI", "DA", "DT", "PN"})
# action names as plain str (faster as dict keys than the enum members)
REMOVED, EMPTIED, REPLACED = (
    DeidAction.REMOVED.value,
    DeidAction.EMPTIED.value,
    DeidAction.REPLACED.value,
)
PSEUDONYMIZED, UID_REMAPPED = DeidAction.PSEUDONYMIZED.value, DeidAction.UID_REMAPPED.value
DATE_SHIFTED, RETAINED = DeidAction.DATE_SHIFTED.value, DeidAction.RETAINED.value
CLEANED, BLANKED = DeidAction.CLEANED.value, DeidAction.BLANKED.value


@dataclass
class Walk:
    """State of one :meth:`Deidentifier.deidentify` call."""

    pseudonym: str
    offset: int
    names: list[str]
    ids: list[str]
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: dict[str, None] = field(default_factory=dict)
    _matcher: IdentifierMatcher | None = None

    def count(self, tag: int, action: str) -> None:
        self.counts[(tag_key(int(tag)), action)] += 1

    @property
    def matcher(self) -> IdentifierMatcher:
        if self._matcher is None:
            self._matcher = IdentifierMatcher(self.names, self.ids)
        return self._matcher

    def count_groups_removed(self, private: int, curves: int, overlays: int) -> None:
        """Count, once per data set, the private attributes, curves and overlays removed."""
        for keyword, n in (("PrivateAttributes", private), ("CurveData", curves),
                           ("OverlayData", overlays)):  # fmt: skip
            if n:
                self.counts[(keyword, REMOVED)] += n


#: modes of a walk: normal rules; every text "cleaned"; every text replaced by a dummy
NORMAL, CLEAN, SCRUB = 0, 1, 2
