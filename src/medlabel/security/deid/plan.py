"""Resolving Table E.1-1 and the options into one operation per tag (pure data, cached)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from medlabel.security.deid.report import DeidOptions
from medlabel.security.deid.table import (
    CLEAN_DESCRIPTORS,
    PATIENT_CHARACTERISTICS_CLEAN,
    PATIENT_CHARACTERISTICS_KEEP,
    ProfileCode,
    dictionary_vr,
    modified_dates_tags,
    profile_table,
)

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020


class Op(enum.IntEnum):
    """Operation applied to one attribute after resolving the table and the options."""

    REMOVE = 0  # X
    EMPTY = 1  # Z
    DUMMY = 2  # D (sequences: every item scrubbed)
    UID = 3  # U
    RECURSE = 4  # X/Z/U* on a sequence: keep, apply the rules inside (remaps the UIDs)
    KEEP = 5  # option K (sequences: rules applied inside)
    CLEAN = 6  # option C (identifier heuristic)
    DATE = 7  # modified-dates option
    PSEUDONYM = 8  # PatientID and PatientName


def resolve_code(code: ProfileCode, vr: str | None) -> Op:
    """Resolve a table action code, including the combined ones, to one operation.

    Combined codes are resolved without knowing the IOD, so the choice keeps the dataset
    valid whatever the attribute's type (1, 2 or 3) in the IOD at hand:

    - ``Z/D``, ``X/D`` → ``D``: a dummy is valid for type 1, 2 and 3.
    - ``X/Z`` → ``Z``: an empty value is valid for type 2 and 3.
    - ``X/Z/D`` → ``D`` for values (Device Serial Number, Acquisition DateTime... are
      type 1 in the enhanced multi-frame IODs) but ``Z`` for sequences (Institution Code
      Sequence, Referenced Performed Procedure Step Sequence): an empty sequence is valid
      and a "dummy" sequence would keep coded content such as an institution's name.
    - ``X/Z/U*`` → keep the sequence and apply the rules to its items, which remaps the
      contained instance UIDs (Referenced/Source Image Sequence).

    Examples
    --------
    >>> resolve_code(ProfileCode.X_Z_D, "LO").name, resolve_code(ProfileCode.X_Z_D, "SQ").name
    ('DUMMY', 'EMPTY')
    """
    if code is ProfileCode.X:
        return Op.REMOVE
    if code in (ProfileCode.Z, ProfileCode.X_Z):
        return Op.EMPTY
    if code is ProfileCode.U:
        return Op.UID
    if code is ProfileCode.X_Z_D:
        return Op.EMPTY if vr == "SQ" else Op.DUMMY
    if code is ProfileCode.X_Z_U:
        return Op.RECURSE if vr == "SQ" else Op.EMPTY
    return Op.DUMMY  # D, Z/D, X/D


@cache
def build_plan(options: DeidOptions) -> Mapping[int, Op]:
    """The operation for every tag of Table E.1-1 under ``options`` (options override)."""
    plan = {tag: resolve_code(code, dictionary_vr(tag)) for tag, code in profile_table().items()}
    plan[PATIENT_NAME] = plan[PATIENT_ID] = Op.PSEUDONYM
    if options.shift_dates:
        plan.update(dict.fromkeys(modified_dates_tags(), Op.DATE))
    if options.retain_descriptions:
        plan.update(dict.fromkeys(CLEAN_DESCRIPTORS, Op.CLEAN))
    if options.retain_patient_characteristics:
        plan.update(dict.fromkeys(PATIENT_CHARACTERISTICS_CLEAN, Op.CLEAN))
        plan.update(dict.fromkeys(PATIENT_CHARACTERISTICS_KEEP, Op.KEEP))
    return MappingProxyType(plan)
