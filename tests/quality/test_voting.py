"""Majority votes on label maps and image-level classes."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 - the usual name

from medlabel.quality.voting import disagreement, majority_vote, vote_classes
from tests.quality.readers import reader_masks


def test_vote_needs_two_readers_and_good_weights() -> None:
    with pytest.raises(ValueError, match="at least two"):
        majority_vote([np.zeros(3)])
    with pytest.raises(ValueError, match="one weight per reader"):
        majority_vote([np.zeros(3), np.zeros(3)], weights=[1.0])
    with pytest.raises(ValueError, match="non-negative"):
        majority_vote([np.zeros(3), np.zeros(3)], weights=[0.0, 0.0])


def test_ties_go_to_tie_label_and_are_reported() -> None:
    v = majority_vote([np.array([1, 1]), np.array([1, 2])], tie_label=9)
    assert v.labelmap.tolist() == [1, 9]
    assert v.tied.tolist() == [False, True]
    assert v.support.tolist() == [1.0, 0.5]


def test_weights_break_ties() -> None:
    v = majority_vote([np.array([1]), np.array([2])], weights=[2.0, 1.0])
    assert v.labelmap.tolist() == [1] and not v.tied.any()


def test_matches_simpleitk_label_voting_on_real_masks() -> None:
    masks = [m.astype(np.uint8) for m in reader_masks()[:3]]  # odd count: no ties
    ours = majority_vote(masks)
    theirs = sitk.GetArrayFromImage(
        sitk.LabelVoting([sitk.GetImageFromArray(m) for m in masks], 255)
    )
    assert np.array_equal(ours.labelmap, theirs)
    assert not ours.tied.any()


def test_disagreement_marks_where_readers_differ() -> None:
    masks = reader_masks()
    d = disagreement(masks)
    assert d.any() and not d.all()
    stack = np.stack(masks)
    assert np.array_equal(d, stack.any(0) & ~stack.all(0))


def test_class_vote() -> None:
    votes = vote_classes([{"polyp"}, {"polyp", "bleeding"}, set()])
    assert [(v.name, v.votes, v.chosen) for v in votes] == [
        ("bleeding", (1,), False),
        ("polyp", (0, 1), True),
    ]
    weighted = vote_classes([{"a"}, set(), set()], weights=[3, 1, 1])
    assert weighted[0].chosen and weighted[0].share == pytest.approx(0.6)
    with pytest.raises(ValueError, match="at least two"):
        vote_classes([{"a"}])
