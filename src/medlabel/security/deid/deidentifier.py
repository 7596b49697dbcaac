"""The de-identifier: PS3.15 Annex E basic profile plus options, keyed by a project secret."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID_dictionary

from medlabel.io.dicom.encoded import EncodedFile, encode_with_pydicom
from medlabel.security.deid.elements import (
    QUIET_VALIDATION,
    READ_ERRORS,
    as_strings,
    empty,
    patient_key,
    pixel_warnings,
    put,
    strings,
    tag_key,
    texts,
)
from medlabel.security.deid.encoded import deidentify_file
from medlabel.security.deid.plan import Op, build_plan
from medlabel.security.deid.report import DeidOptions, DeidResult
from medlabel.security.deid.table import TABLE_EDITION, dictionary_vr
from medlabel.security.deid.values import TEXT_VRS, dummy_value, shift_values
from medlabel.security.deid.walk import (
    BLANKED,
    CLASS_UID_TAGS,
    CLEAN,
    CLEANED,
    DATE_SHIFTED,
    EMPTIED,
    NORMAL,
    OTHER_VRS,
    PSEUDONYMIZED,
    REMOVED,
    REPLACED,
    RETAINED,
    SCRUB,
    UID_REMAPPED,
    Walk,
)

#: Smallest and largest date shift in days (dates always move into the past).
DATE_SHIFT_RANGE = (-3650, -365)
MIN_SECRET_LENGTH = 16

#: File meta attributes that name the sending or receiving system.
_META_REMOVE = (
    0x00020016,
    0x00020017,
    0x00020018,
    0x00020026,
    0x00020027,
    0x00020028,
    0x00020100,
    0x00020102,
)
_UID_CACHE_SIZE = 200_000
#: PatientName, OtherPatientNames, PatientBirthName, PatientMotherBirthName
_NAME_TAGS = (0x00100010, 0x00101001, 0x00101005, 0x00101060)
#: PatientID, OtherPatientIDs, AccessionNumber, PatientBirthDate
_ID_TAGS = (0x00100020, 0x00101000, 0x00080050, 0x00100030)


class Deidentifier:
    """De-identifies DICOM datasets in place with the PS3.15 Annex E basic profile.

    Deterministic for one project ``secret``: UIDs, pseudonyms and date offsets are
    HMAC-SHA256 of the original values, so series and studies still group and references
    between instances still resolve, within the project and across imports; another
    secret gives unrelated values. Nothing of the original can be recovered without the
    secret (and brute force of low-entropy values such as patient IDs needs it too).

    Besides the actions of Table E.1-1 (see :func:`~medlabel.security.deid.plan.resolve_code`
    for the combined ones) and the options, it removes every private attribute, curve
    (50xx) and overlay (60xx) group and group length; and, for attributes outside the
    table, remaps every instance UID, empties every person name, handles every DA/DT by
    VR (PS3.15 E.1.1 Note 4), removes attributes unknown to the data dictionary, and
    applies the same rules inside every sequence item. File meta: sending/receiving AE
    titles removed, Media Storage SOP Instance UID remapped, preamble zeroed.

    One instance can be shared by threads (its only state is a cache of remapped UIDs).

    Parameters
    ----------
    secret
        The project's secret, at least 16 characters.
    options
        Which Annex E options to apply.

    Raises
    ------
    ValueError
        If ``secret`` is shorter than 16 characters.
    """

    def __init__(self, secret: str, options: DeidOptions | None = None) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the de-identification secret must have at least {MIN_SECRET_LENGTH} "
                f"characters; got {len(secret)}"
            )
        self.options = options or DeidOptions()
        self._plan = build_plan(self.options)
        self._cleans = Op.CLEAN in self._plan.values()
        key = secret.encode("utf-8")
        self._uid_mac = hmac.new(key, b"uid\x00", hashlib.sha256)
        self._patient_mac = hmac.new(key, b"patient\x00", hashlib.sha256)
        self._date_mac = hmac.new(key, b"date\x00", hashlib.sha256)
        self._uids: dict[str, str] = {}
        self._mark_bytes: dict[int, bytes] | None = None
        self._methods = [f"PS3.15 E.1-1 {TABLE_EDITION} Basic Profile (medlabel)"]
        self._method_codes = [codes.DCM.BasicApplicationConfidentialityProfile]
        if self.options.shift_dates:
            self._methods.append("Retain Longitudinal Temporal Modified Dates Option")
            self._method_codes.append(
                codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption
            )
        if self.options.retain_patient_characteristics:
            self._methods.append("Retain Patient Characteristics Option")
            self._method_codes.append(codes.DCM.RetainPatientCharacteristicsOption)
        if self.options.retain_descriptions:
            self._methods.append("Clean Descriptors Option")
            self._method_codes.append(codes.DCM.CleanDescriptorsOption)

    @property
    def plan(self) -> Mapping[int, Op]:
        """The operation for each attribute of Table E.1-1 under the options."""
        return self._plan

    @property
    def cleans(self) -> bool:
        """Whether an option asks for the "clean" heuristic on some attributes."""
        return self._cleans

    # -- keyed derivations -------------------------------------------------------------

    def remap_uid(self, uid: str) -> str:
        """The project's replacement for ``uid``: ``2.25.<128-bit HMAC as decimal>``.

        Well-known UIDs of the DICOM standard (SOP classes, transfer syntaxes...) and
        empty values are returned unchanged.

        Examples
        --------
        >>> d = Deidentifier("a-project-secret-1234")
        >>> d.remap_uid("1.2.3.4") == d.remap_uid("1.2.3.4"), d.remap_uid("1.2.840.10008.1.2")
        (True, '1.2.840.10008.1.2')
        """
        uid = uid.strip("\x00 ")
        cached = self._uids.get(uid)
        if cached is not None:
            return cached
        if not uid or uid in UID_dictionary:
            return uid
        mac = self._uid_mac.copy()
        mac.update(uid.encode("ascii", "replace"))
        new = "2.25." + str(int.from_bytes(mac.digest()[:16], "big"))
        if len(self._uids) >= _UID_CACHE_SIZE:
            self._uids.clear()
        self._uids[uid] = new
        return new

    def pseudonym(self, patient_id: str) -> str:
        """The project's pseudonym for a patient ID, written to PatientID and PatientName.

        Examples
        --------
        >>> Deidentifier("a-project-secret-1234").pseudonym("12345")[:5]
        'ANON-'
        """
        mac = self._patient_mac.copy()
        mac.update(patient_id.encode("utf-8"))
        return "ANON-" + mac.hexdigest()[:12].upper()

    def date_offset_days(self, patient_id: str) -> int:
        """The project's date shift for a patient, in whole days within DATE_SHIFT_RANGE."""
        mac = self._date_mac.copy()
        mac.update(patient_id.encode("utf-8"))
        low, high = DATE_SHIFT_RANGE
        return low + int.from_bytes(mac.digest()[:8], "big") % (high - low + 1)

    # -- the walk ---------------------------------------------------------------------

    def deidentify(self, ds: Dataset) -> DeidResult:
        """De-identify ``ds`` in place (file meta and sequences included).

        Parameters
        ----------
        ds
            A dataset as read by ``pydicom.dcmread``; pixel data and geometry are left
            untouched.

        Returns
        -------
        DeidResult
            Actions per attribute keyword and warnings; no original values.
        """
        with QUIET_VALIDATION:
            walk = self._deidentify(ds)
        actions: dict[str, dict[str, int]] = {}
        for (keyword, action), n in walk.counts.items():
            actions.setdefault(keyword, {})[action] = n
        return DeidResult(actions, tuple(walk.warnings), walk.pseudonym)

    def _deidentify(self, ds: Dataset) -> Walk:
        key = patient_key(ds)
        walk = Walk(
            pseudonym=self.pseudonym(key),
            offset=self.date_offset_days(key),
            names=texts(ds, _NAME_TAGS) if self._cleans else [],
            ids=texts(ds, _ID_TAGS) if self._cleans else [],
        )
        walk.warnings.update(dict.fromkeys(pixel_warnings(ds)))
        self._walk(ds, walk, NORMAL)
        self.file_meta(ds, walk)
        self._mark(ds)
        return walk

    def deidentify_file(self, data: bytes) -> tuple[EncodedFile, DeidResult] | None:
        """The DICOM file ``data`` de-identified as :meth:`deidentify` does it, without
        building a pydicom data set (faster), or None for files left to
        :meth:`deidentify` (see :mod:`medlabel.security.deid.encoded`)."""
        return deidentify_file(self, data)

    def _walk(self, ds: Dataset, walk: Walk, mode: int) -> None:
        plan = self._plan
        # pydicom's tag -> element map, read directly to keep per-element overhead low;
        # all changes go through the Dataset API.
        elements = ds._dict
        private = curves = overlays = 0
        for tag in list(elements):  # BaseTag keys; `key` is the plain int for fast lookups
            key = int(tag)
            group = key >> 16
            if group & 1:
                del ds[tag]
                private += 1
                continue
            if not key & 0xFFFF:  # group length: stale once values change
                del ds[tag]
                continue
            high = group >> 8
            if high == 0x50 or high == 0x60:
                # curve data (50xx) and overlays (60xx): Overlay Data is type 1 in its
                # module, so the whole repeating group goes with it.
                del ds[tag]
                if high == 0x50:
                    curves += 1
                else:
                    overlays += 1
                continue
            vr = elements[tag].VR
            if vr is None or vr == "UN":
                vr = dictionary_vr(key)
            op = plan.get(key)
            try:
                if op is not None:
                    if vr is None:  # a table attribute pydicom cannot decode: drop it
                        op = Op.REMOVE
                    self._apply(ds, tag, vr or "UN", op, walk)
                elif vr is None or dictionary_vr(key) is None:
                    # Not in the data dictionary (a newer or invalid attribute): its content
                    # cannot be judged, so it goes (PS3.15 E.1.1 Note 1).
                    del ds[tag]
                    walk.count(tag, REMOVED)
                elif vr in OTHER_VRS or mode:
                    self._other(ds, tag, vr, walk, mode)
            except READ_ERRORS:
                if tag in elements:
                    del ds[tag]
                walk.count(tag, REMOVED)
                walk.warnings[f"{tag_key(tag)} could not be read and was removed"] = None
        walk.count_groups_removed(private, curves, overlays)

    def _apply(self, ds: Dataset, tag: int, vr: str, op: Op, walk: Walk) -> None:
        if op is Op.REMOVE:
            del ds[tag]
            walk.count(tag, REMOVED)
        elif op is Op.EMPTY:
            empty(ds, tag, vr)
            walk.count(tag, EMPTIED)
        elif op is Op.PSEUDONYM:
            put(ds, tag, vr, walk.pseudonym)
            walk.count(tag, PSEUDONYMIZED)
        elif op is Op.UID:
            self._remap(ds, tag, walk)
        elif op is Op.DUMMY:
            if vr == "SQ":
                self._recurse(ds, tag, walk, SCRUB)
                walk.count(tag, REPLACED)
            elif vr == "UI":
                self._remap(ds, tag, walk)
            else:
                put(ds, tag, vr, dummy_value(vr))
                walk.count(tag, REPLACED)
        elif op is Op.DATE:
            if vr in ("DA", "DT"):
                self._shift(ds, tag, vr, walk)
            else:
                walk.count(tag, RETAINED)
        elif op is Op.CLEAN:
            if vr == "SQ":
                self._recurse(ds, tag, walk, CLEAN)
                walk.count(tag, CLEANED)
            else:
                self._clean(ds, tag, vr, walk)
        else:  # KEEP, RECURSE: keep the attribute, apply the rules inside sequences
            if vr == "SQ":
                self._recurse(ds, tag, walk, NORMAL)
            walk.count(tag, RETAINED if op is Op.KEEP else CLEANED)

    def _other(self, ds: Dataset, tag: int, vr: str, walk: Walk, mode: int) -> None:
        """Attributes not in Table E.1-1."""
        if vr == "SQ":
            self._recurse(ds, tag, walk, mode)
        elif vr == "UI":
            if tag not in CLASS_UID_TAGS:
                self._remap(ds, tag, walk)
        elif vr in ("DA", "DT"):
            # E.1.1 Note 4: handle dates by VR, not only the listed attributes.
            if self.options.shift_dates:
                self._shift(ds, tag, vr, walk)
            else:
                empty(ds, tag, vr)
                walk.count(tag, EMPTIED)
        elif vr == "PN":  # a person's name whatever the attribute
            empty(ds, tag, vr)
            walk.count(tag, EMPTIED)
        elif mode == SCRUB and vr in TEXT_VRS:
            put(ds, tag, vr, dummy_value(vr))
            walk.count(tag, REPLACED)
        elif mode == CLEAN and vr in TEXT_VRS:
            self._clean(ds, tag, vr, walk)

    def _recurse(self, ds: Dataset, tag: int, walk: Walk, mode: int) -> None:
        value = ds[tag].value
        if not isinstance(value, Sequence):
            raise TypeError("not a sequence")
        for item in value:
            self._walk(item, walk, mode)

    def _remap(self, ds: Dataset, tag: int, walk: Walk) -> None:
        values = strings(ds, tag)
        if values:
            remap = self.remap_uid
            new = [remap(v) for v in values]
            put(ds, tag, "UI", new[0] if len(new) == 1 else new)
        walk.count(tag, UID_REMAPPED)

    def _shift(self, ds: Dataset, tag: int, vr: str, walk: Walk) -> None:
        values = strings(ds, tag)
        if not values:
            walk.count(tag, DATE_SHIFTED)
            return
        shifted = shift_values(values, vr, walk.offset)
        if shifted is None:
            empty(ds, tag, vr)
            walk.count(tag, EMPTIED)
            walk.warnings[f"malformed {vr} value in {tag_key(int(tag))} was emptied"] = None
            return
        put(ds, tag, vr, shifted[0] if len(shifted) == 1 else shifted)
        walk.count(tag, DATE_SHIFTED)

    def _clean(self, ds: Dataset, tag: int, vr: str, walk: Walk) -> None:
        value = ds[tag].value
        if value and vr in TEXT_VRS and walk.matcher.found("\\".join(as_strings(value))):
            empty(ds, tag, vr)
            walk.count(tag, BLANKED)
            return
        walk.count(tag, CLEANED)

    def file_meta(self, ds: Dataset, walk: Walk) -> None:
        """De-identify the preamble and file meta information of ``ds``."""
        preamble = getattr(ds, "preamble", None)
        if preamble:
            ds.preamble = b"\x00" * 128  # E.1.1 item 7: the preamble may carry identity
        meta: Dataset | None = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in _META_REMOVE:
            if tag in meta:
                del meta[tag]
                walk.count(tag, REMOVED)
        if "MediaStorageSOPInstanceUID" in meta:
            self._remap(meta, 0x00020003, walk)
        if "ImplementationClassUID" in meta:
            put(meta, 0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID)
            put(meta, 0x00020013, "SH", "MEDLABEL_DEID")

    def mark_elements(self) -> dict[int, bytes]:
        """The attributes that declare the de-identification, as pydicom encodes them
        (explicit VR little endian)."""
        if self._mark_bytes is None:
            shell = Dataset()
            self._mark(shell)
            self._mark_bytes = {int(e.tag): encode_with_pydicom(e) for e in shell}
        return dict(self._mark_bytes)

    def _mark(self, ds: Dataset) -> None:
        """Add the attributes that declare the de-identification (E.1.1 item 6)."""
        items = []
        for code in self._method_codes:
            item = Dataset()
            put(item, 0x00080100, "SH", code.value)
            put(item, 0x00080102, "SH", code.scheme_designator)
            put(item, 0x00080104, "LO", code.meaning)
            items.append(item)
        methods = self._methods
        put(ds, 0x00120062, "CS", "YES")  # Patient Identity Removed
        put(ds, 0x00120063, "LO", methods if len(methods) > 1 else methods[0])
        put(ds, 0x00120064, "SQ", items)  # De-identification Method Code Sequence
        # Longitudinal Temporal Information Modified
        put(ds, 0x00280303, "CS", "MODIFIED" if self.options.shift_dates else "REMOVED")
