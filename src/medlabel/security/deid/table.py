"""DICOM PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes) as data.

The basic-profile column is read from the ``dicom-anonymizer`` package's transcription of
the 2026c edition (``dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c``),
used as data only. That module has no option columns, so the few option columns medlabel
implements are transcribed below from the same table (column "Rtn. Pat. Chars. Opt." and
"Clean Desc. Opt."); the "Rtn. Long. Modif. Dates Opt." column marks every date/time
attribute of the table except Patient's Birth Date and Time, so it is derived from the
attribute's VR rather than copied.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

from pydicom.datadict import dictionary_VR

#: Edition of PS3.15 the basic-profile column comes from.
TABLE_EDITION = "2026c"

_TABLE_MODULE = "dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c"


class ProfileCode(enum.StrEnum):
    """An action code of the basic profile column of Table E.1-1."""

    D = "D"
    Z = "Z"
    X = "X"
    U = "U"
    Z_D = "Z/D"
    X_Z = "X/Z"
    X_D = "X/D"
    X_Z_D = "X/Z/D"
    X_Z_U = "X/Z/U*"


#: Names of the lists in the dicom-anonymizer data module, per action code.
_LISTS: dict[str, ProfileCode] = {
    "D_TAGS": ProfileCode.D,
    "Z_TAGS": ProfileCode.Z,
    "X_TAGS": ProfileCode.X,
    "U_TAGS": ProfileCode.U,
    "Z_D_TAGS": ProfileCode.Z_D,
    "X_Z_TAGS": ProfileCode.X_Z,
    "X_D_TAGS": ProfileCode.X_D,
    "X_Z_D_TAGS": ProfileCode.X_Z_D,
    "X_Z_U_STAR_TAGS": ProfileCode.X_Z_U,
}

#: "Rtn. Pat. Chars. Opt." column: K (keep) entries.
PATIENT_CHARACTERISTICS_KEEP: frozenset[int] = frozenset(
    {
        0x00102160,  # Ethnic Group
        0x00101010,  # Patient's Age
        0x00100040,  # Patient's Sex
        0x00102203,  # Patient's Sex Neutered
        0x00101020,  # Patient's Size
        0x00101030,  # Patient's Weight
        0x001021C0,  # Pregnancy Status
        0x001021A0,  # Smoking Status
    }
)

#: "Rtn. Pat. Chars. Opt." column: C (clean) entries.
PATIENT_CHARACTERISTICS_CLEAN: frozenset[int] = frozenset(
    {
        0x00102110,  # Allergies
        0x00380500,  # Patient State
        0x00400012,  # Pre-Medication
        0x00380050,  # Special Needs
    }
)

#: "Clean Desc. Opt." column: C (clean) entries.
CLEAN_DESCRIPTORS: frozenset[int] = frozenset(
    {
        0x00184000,
        0x00181400,
        0x001811BB,
        0x00189424,
        0x001021B0,
        0x00081084,
        0x00081080,
        0x00102110,
        0x300A00C3,
        0x300A00DD,
        0x00120072,
        0x00120051,
        0x00400310,
        0x00400280,
        0x300A02EB,
        0x3010000F,
        0x30100017,
        0x0040051A,
        0x00180010,
        0x0018A003,
        0x0018937F,
        0x00082111,
        0x0016004B,
        0x00380040,
        0x300A0016,
        0x30100037,
        0x30100035,
        0x30100038,
        0x30100036,
        0x300A0676,
        0x300A0196,
        0x3010007F,
        0x300A0072,
        0x00209158,
        0x00084000,
        0x00204000,
        0x00402400,
        0x40080300,
        0x300A0742,
        0x300A0783,
        0x40080115,
        0x4008010B,
        0x22000002,
        0x00500021,
        0x0016002B,
        0x00102000,
        0x0018937B,
        0x00102180,
        0x00104000,
        0x00380500,
        0x00400254,
        0x300A000E,
        0x3010007B,
        0x30100081,
        0x30100061,
        0x00181030,
        0x300A0619,
        0x300A0623,
        0x300A067D,
        0x300A067C,
        0x300C0113,
        0x0040100A,
        0x00321030,
        0x3010005C,
        0x00402001,
        0x00401002,
        0x00321066,
        0x00321067,
        0x00400275,
        0x00321070,
        0x00401400,
        0x00321060,
        0x00189937,
        0x00189185,
        0x40084000,
        0x30060028,
        0x30060038,
        0x30060026,
        0x30060088,
        0x30060085,
        0x3010005A,
        0x300A0004,
        0x300A0002,
        0x300A0003,
        0x30100054,
        0x300A062A,
        0x30100056,
        0x00400007,
        0x0008103E,
        0x00380062,
        0x300A01B2,
        0x300A01A6,
        0x00400602,
        0x00400600,
        0x30060006,
        0x30060002,
        0x30060004,
        0x00324000,
        0x00081030,
        0x300A0608,
        0x30100077,
        0x3010007A,
        0x300A0734,
        0x30100033,
        0x30100034,
        0x00384000,
    }
)

#: Date/time attributes of the table that the modified-dates option does NOT retain.
_NOT_DATE_OPTION: frozenset[int] = frozenset({0x00100030, 0x00100032})  # birth date, time
#: Attributes the modified-dates option retains although their VR is not DA/DT/TM.
_EXTRA_DATE_OPTION: frozenset[int] = frozenset({0x00080201})  # Timezone Offset From UTC


@cache
def profile_table() -> Mapping[int, ProfileCode]:
    """The basic-profile action of every attribute of Table E.1-1 with a fixed tag.

    Returns
    -------
    Mapping[int, ProfileCode]
        Read-only map from the tag as an int (``0xGGGGEEEE``) to its action code. The
        masked rows (curve data ``50xx``, overlay data and comments ``60xx``) and private
        attributes are not in it; the de-identifier handles those by group.

    Examples
    --------
    >>> profile_table()[0x00100010].value
    'Z'
    """
    import importlib

    module = importlib.import_module(_TABLE_MODULE)
    table: dict[int, ProfileCode] = {}
    for name, code in _LISTS.items():
        for entry in getattr(module, name):
            if len(entry) != 2:  # (group, element, group mask, element mask) rows
                continue
            table[(entry[0] << 16) | entry[1]] = code
    return MappingProxyType(table)


@cache
def modified_dates_tags() -> frozenset[int]:
    """Tags the "Retain Longitudinal Temporal Information with Modified Dates" option cleans.

    Every table attribute whose VR is DA, DT or TM, except Patient's Birth Date and Time,
    plus Timezone Offset From UTC (as in the option column of Table E.1-1).
    """
    tags = set(_EXTRA_DATE_OPTION)
    for tag in profile_table():
        if tag in _NOT_DATE_OPTION:
            continue
        if dictionary_vr(tag) in ("DA", "DT", "TM"):
            tags.add(tag)
    return frozenset(tags)


@cache
def dictionary_vr(tag: int) -> str | None:
    """The VR of ``tag`` in pydicom's data dictionary (repeaters included), or None."""
    try:
        vr: str = dictionary_VR(tag)
    except KeyError:
        return None
    return vr
