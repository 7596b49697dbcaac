"""STAPLE against SimpleITK's implementation, on simulated readers of a real photograph."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 - the usual name

from medlabel.quality.staple import multilabel_staple, staple
from tests.quality.readers import coins_reference, reader_masks


def test_needs_two_readers_of_one_shape() -> None:
    with pytest.raises(ValueError, match="at least two"):
        staple([np.ones((3, 3))])
    with pytest.raises(ValueError, match="same shape"):
        staple([np.ones((3, 3)), np.ones((3, 4))])


def test_all_empty_gives_empty_consensus_and_perfect_readers() -> None:
    r = staple([np.zeros((4, 4)), np.zeros((4, 4))])
    assert not r.consensus().any()
    assert r.sensitivity == (1.0, 1.0) and r.specificity == (1.0, 1.0)


def test_identical_readers_are_the_consensus() -> None:
    m = coins_reference() > 0
    r = staple([m, m, m])
    assert np.array_equal(r.consensus(), m)
    assert all(s > 0.999 for s in r.sensitivity + r.specificity)


def test_bad_prior_is_refused() -> None:
    m = coins_reference() > 0
    with pytest.raises(ValueError, match="prior"):
        staple([m, m], prior=1.0)


def test_binary_matches_simpleitk() -> None:
    masks = reader_masks()
    ours = staple(masks)
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in masks]
    f = sitk.STAPLEImageFilter()
    f.SetForegroundValue(1)
    f.SetMaximumIterations(200)
    theirs = sitk.GetArrayFromImage(f.Execute(images))
    assert np.max(np.abs(ours.probability - theirs)) < 1e-3
    np.testing.assert_allclose(ours.sensitivity, f.GetSensitivity(), atol=1e-4)
    np.testing.assert_allclose(ours.specificity, f.GetSpecificity(), atol=1e-4)
    # the generous reader has the lowest specificity, the reader who missed coins the
    # lowest sensitivity
    assert int(np.argmin(ours.specificity)) == 0
    assert int(np.argmin(ours.sensitivity)) == 2


def test_multilabel_agrees_with_simpleitk() -> None:
    labels = coins_reference()
    # three structures: coins split into left, middle and right thirds
    thirds = np.digitize(
        np.arange(labels.shape[1]), [labels.shape[1] // 3, 2 * labels.shape[1] // 3]
    )
    maps = [np.where(m, thirds[None, :] + 1, 0).astype(np.uint8) for m in reader_masks()]
    ours = multilabel_staple(maps)
    f = sitk.MultiLabelSTAPLEImageFilter()
    theirs = sitk.GetArrayFromImage(f.Execute([sitk.GetImageFromArray(m) for m in maps]))
    same = np.mean(ours.consensus() == theirs)
    assert same > 0.999
    assert ours.labels == (0, 1, 2, 3) and ours.confusion.shape == (4, 4, 4)
    np.testing.assert_allclose(ours.confusion.sum(axis=2), 1.0, atol=1e-9)


def test_multilabel_refuses_unlisted_labels() -> None:
    with pytest.raises(ValueError, match="not in labels"):
        multilabel_staple([np.array([0, 1]), np.array([0, 2])], labels=[0, 1])
