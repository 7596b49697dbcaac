"""De-identification of DICOM datasets on import (PS3.15 Annex E basic profile and options).

Use one :class:`Deidentifier` per project (keyed by the project's secret and options) and
one :class:`DeidReport` per import::

    deid = Deidentifier(project_secret, DeidOptions(shift_dates=True))
    report = DeidReport(deid.options)
    for ds in datasets:
        report.add(deid.deidentify(ds))  # in place
    store(report.to_dict())

An importer that has the file's bytes calls ``deid.deidentify_file(data)`` first: for
files in the usual encoding it gives the de-identified file and the same report without
building a data set (byte for byte what ``deidentify`` and writing give), else None.
"""

from medlabel.security.deid.deidentifier import DATE_SHIFT_RANGE, Deidentifier
from medlabel.security.deid.elements import QUIET_VALIDATION
from medlabel.security.deid.report import (
    PROFILE_NAME,
    DeidAction,
    DeidOptions,
    DeidReport,
    DeidResult,
)
from medlabel.security.deid.table import TABLE_EDITION, ProfileCode, profile_table

__all__ = [
    "DATE_SHIFT_RANGE",
    "PROFILE_NAME",
    "QUIET_VALIDATION",
    "TABLE_EDITION",
    "DeidAction",
    "DeidOptions",
    "DeidReport",
    "DeidResult",
    "Deidentifier",
    "ProfileCode",
    "profile_table",
]
