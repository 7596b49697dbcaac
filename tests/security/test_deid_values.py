"""Pure helpers: dummy values per VR, date shifting, the identifier heuristic."""

from __future__ import annotations

import pytest

from medlabel.security.deid.values import (
    IdentifierMatcher,
    dummy_value,
    shift_da,
    shift_dt,
    shift_values,
)


@pytest.mark.parametrize(
    "value",
    ["", "2024", "202403", "20240230", "2024-03-01", "20240301-20240302", "abcdefgh", "00000000"],
)
def test_malformed_dates_are_rejected(value: str) -> None:
    assert shift_da(value, -400) is None


def test_shift_da_crosses_leap_day_and_years() -> None:
    assert shift_da("20240301", -1) == "20240229"
    assert shift_da("20230301", -1) == "20230228"
    assert shift_da("20000101", -365) == "19990101"
    assert shift_da("20010101", -366) == "20000101"  # 2000 is a leap year
    assert shift_da(" 19950903 ", 0) == "19950903"
    assert shift_da("1995.09.03", 1) == "19950904"


def test_shift_da_out_of_calendar_range_is_rejected() -> None:
    assert shift_da("00010105", -10) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240301", "20240229"),
        ("2024030112", "2024022912"),
        ("20240301123456", "20240229123456"),
        ("20240301123456.123456", "20240229123456.123456"),
        ("20240301123456.1-0500", "20240229123456.1-0500"),
        ("20240301+0100", "20240229+0100"),
    ],
)
def test_shift_dt_keeps_time_and_offset(value: str, expected: str) -> None:
    assert shift_dt(value, -1) == expected


@pytest.mark.parametrize("value", ["2024", "202403", "20240301T1200", "20240301123", "x"])
def test_shift_dt_rejects_partial_or_malformed(value: str) -> None:
    assert shift_dt(value, -1) is None


def test_shift_values_is_all_or_nothing() -> None:
    assert shift_values(["20240301", "20240302"], "DA", 1) == ["20240302", "20240303"]
    assert shift_values(["20240301", "bad"], "DA", 1) is None
    assert shift_values(["20240301120000"], "DT", 1) == ["20240302120000"]


def test_dummy_values_are_valid_for_their_vr() -> None:
    assert dummy_value("PN") == "ANONYMIZED"
    assert len(str(dummy_value("SH"))) <= 16
    assert len(str(dummy_value("CS"))) <= 16
    assert str(dummy_value("CS")).isupper()
    assert dummy_value("DA") == "19000101"
    assert dummy_value("TM") == "000000"
    assert dummy_value("DS") == "0"
    assert dummy_value("FD") == 0
    assert dummy_value("OB") == b"\x00\x00"  # even length


def test_matcher_without_identifiers_matches_nothing() -> None:
    matcher = IdentifierMatcher(names=[], ids=["", " "])
    assert not matcher
    assert not matcher.found("anything at all")


def test_matcher_name_parts_match_whole_words_only() -> None:
    matcher = IdentifierMatcher(names=["Li^Wei=李^伟"], ids=[])
    assert matcher.found("CT chest LI")
    assert matcher.found("follow-up wei")
    assert matcher.found("患者李伟随访")
    assert not matcher.found("Clinical weight")  # "li" and "wei" inside other words
    assert not matcher.found("患者李")  # one ideograph alone is too common to match


def test_matcher_ids_match_through_separators() -> None:
    matcher = IdentifierMatcher(names=["Doe^John"], ids=["12-345-678", "ACC99"])
    assert matcher.found("patient 12345678 follow up")
    assert matcher.found("re: acc99")
    assert not matcher.found("series 1234")


def test_matcher_short_ids_match_as_words() -> None:
    matcher = IdentifierMatcher(names=[], ids=["42"])
    assert matcher.found("patient 42")
    assert not matcher.found("slice 142")
