"""De-identification of DICOM datasets on import (PS3.15 Annex E basic profile and options).

Use one :class:`Deidentifier` per project (keyed by the project's secret and options) and
one :class:`DeidReport` per import::

    deid = Deidentifier(project_secret, DeidOptions(shift_dates=True))
    report = DeidReport(deid.options)
    for ds in datasets:
        report.add(deid.deidentify(ds))  # in place
    store(report.to_dict())
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
