"""Options, per-instance results and the per-import report of de-identification.

Results and reports hold attribute keywords, action names, counts and fixed warning texts
only, never a value read from a dataset, so they can be stored and logged freely.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from medlabel.security.deid.table import TABLE_EDITION

PROFILE_NAME = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"


class DeidOptions(BaseModel):
    """Per-project options of the de-identification (PS3.15 Annex E options).

    Attributes
    ----------
    shift_dates
        Retain Longitudinal Temporal Information with Modified Dates Option: DA and DT
        values of the date/time attributes are shifted by a per-patient number of days
        instead of being removed or emptied; times of day (TM) are kept.
    retain_patient_characteristics
        Retain Patient Characteristics Option: keep age, sex, size, weight, ethnic group,
        smoking and pregnancy status; allergies, patient state, pre-medication and
        special needs are kept unless they contain the patient's name or an identifier.
    retain_descriptions
        Clean Descriptors Option: keep study/series descriptions, protocol name, comments
        and similar text unless it contains a part of the patient's name or one of the
        patient's identifiers, in which case the value is blanked (a heuristic; see
        :class:`~medlabel.security.deid.values.IdentifierMatcher`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    shift_dates: bool = False
    retain_patient_characteristics: bool = False
    retain_descriptions: bool = False


class DeidAction(enum.StrEnum):
    """What was done to one attribute."""

    REMOVED = "removed"
    EMPTIED = "emptied"
    REPLACED = "replaced"
    PSEUDONYMIZED = "pseudonymized"
    UID_REMAPPED = "uid_remapped"
    DATE_SHIFTED = "date_shifted"
    RETAINED = "retained"
    CLEANED = "cleaned"
    BLANKED = "blanked"


@dataclass(frozen=True)
class DeidResult:
    """What :meth:`Deidentifier.deidentify` did to one dataset.

    Attributes
    ----------
    actions
        Attribute keyword (or ``"(GGGG,EEEE)"`` for attributes unknown to the dictionary,
        ``"PrivateAttributes"``, ``"CurveData"``, ``"OverlayData"``) to action name to the
        number of times it was applied (more than one for attributes inside sequences).
    warnings
        Fixed texts about risks the profile does not remove (burned-in text...).
    patient_pseudonym
        The pseudonym written to PatientID and PatientName.
    """

    actions: Mapping[str, Mapping[str, int]]
    warnings: tuple[str, ...]
    patient_pseudonym: str

    def action_for(self, keyword: str) -> str | None:
        """The action applied to ``keyword`` (the most frequent one), or None."""
        counts = self.actions.get(keyword)
        if not counts:
            return None
        return max(counts.items(), key=lambda item: item[1])[0]


@dataclass
class DeidReport:
    """Accumulates :class:`DeidResult` over one import, for storage with the import.

    Examples
    --------
    >>> report = DeidReport(DeidOptions())
    >>> report.add(DeidResult({"PatientName": {"pseudonymized": 1}}, ("w",), "ANON-1"))
    >>> report.to_dict()["actions"]
    {'PatientName': {'pseudonymized': 1}}
    """

    options: DeidOptions
    instances: int = 0
    actions: dict[str, Counter[str]] = field(default_factory=dict)
    warnings: Counter[str] = field(default_factory=Counter)

    def add(self, result: DeidResult) -> None:
        """Count one de-identified instance."""
        self.instances += 1
        totals = self.actions
        for keyword, counts in result.actions.items():  # one call per instance: kept cheap
            total = totals.get(keyword)
            if total is None:
                totals[keyword] = Counter(counts)
            else:
                for action, n in counts.items():
                    total[action] += n
        if result.warnings:
            self.warnings.update(result.warnings)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary: profile, table edition, options, counts, warnings."""
        return {
            "profile": PROFILE_NAME,
            "table_edition": TABLE_EDITION,
            "options": self.options.model_dump(),
            "instances": self.instances,
            "actions": {k: dict(sorted(v.items())) for k, v in sorted(self.actions.items())},
            "warnings": [
                {"message": message, "count": count}
                for message, count in sorted(self.warnings.items())
            ],
        }
