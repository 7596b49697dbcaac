"""Monte-Carlo dropout: a network's dropout layers left on at prediction, so repeated
forward passes sample from an approximate posterior (Gal & Ghahramani 2016).

- :class:`UncertaintyMethod`: how pre-annotation measures uncertainty — test-time
  augmentation (flips), MC dropout, both, or ``auto`` (MC dropout when the network has
  dropout, else test-time augmentation).
- :func:`mc_dropout_mode`: dropout layers in train mode, everything else (batch and
  instance norm above all) in eval mode; the network is back in eval mode afterwards.
- :func:`bottleneck_dropout`: adds dropout after the deepest block of a MONAI U-Net
  without adding parameters (old weights load unchanged).
- :func:`sample_statistics` / :class:`SampleStatistics` (running, for large volumes):
  entropy of the mean and mutual information (BALD) of stochastic samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import numpy as np
from torch import nn

from medlabel.core.errors import InvalidInputError

#: stochastic forward passes of MC dropout by default
DEFAULT_MC_SAMPLES = 8

_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class UncertaintyMethod(StrEnum):
    """How the uncertainty of a prediction is measured."""

    AUTO = "auto"
    TTA = "tta"
    MC_DROPOUT = "mc-dropout"
    TTA_MC_DROPOUT = "tta+mc-dropout"


def parse_method(method: str | UncertaintyMethod) -> UncertaintyMethod:
    """The method called ``method``.

    Raises
    ------
    InvalidInputError
        Unknown name (the message lists the known ones).

    Examples
    --------
    >>> parse_method("mc-dropout").value
    'mc-dropout'
    """
    try:
        return UncertaintyMethod(method)
    except ValueError:
        known = ", ".join(m.value for m in UncertaintyMethod)
        raise InvalidInputError(f"unknown uncertainty method {method!r}; use {known}") from None


def dropout_layers(module: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``module`` with a rate above 0."""
    return [m for m in module.modules() if isinstance(m, _DROPOUT_TYPES) and m.p > 0]


def has_dropout(module: nn.Module | None) -> bool:
    """Whether ``module`` has a dropout layer with a rate above 0 (False for None)."""
    return module is not None and bool(dropout_layers(module))


def resolve_method(
    method: str | UncertaintyMethod, *, dropout: bool, torch_net: bool = True
) -> tuple[UncertaintyMethod, str]:
    """The method to run and why, for a network with or without dropout.

    Parameters
    ----------
    method
        What was asked.
    dropout
        Whether the network has dropout layers.
    torch_net
        Whether a torch network runs the prediction (MC dropout needs one; ONNX Runtime
        sessions have no dropout at inference).

    Returns
    -------
    tuple
        The method and a reason (empty when it is the one asked for).

    Raises
    ------
    InvalidInputError
        MC dropout asked of a torch network without dropout.

    Examples
    --------
    >>> resolve_method("auto", dropout=True)
    (<UncertaintyMethod.MC_DROPOUT: 'mc-dropout'>, 'the network has dropout')
    >>> resolve_method("auto", dropout=False)[0].value
    'tta'
    """
    asked = parse_method(method)
    if asked == UncertaintyMethod.AUTO:
        if dropout and torch_net:
            return UncertaintyMethod.MC_DROPOUT, "the network has dropout"
        why = "the ONNX backend has no dropout" if dropout else "the network has no dropout"
        return UncertaintyMethod.TTA, why
    if asked in (UncertaintyMethod.MC_DROPOUT, UncertaintyMethod.TTA_MC_DROPOUT):
        if not torch_net:
            return UncertaintyMethod.TTA, (
                "MC dropout needs the torch network; the ONNX backend ran test-time "
                "augmentation instead (load the model with backend='torch')"
            )
        if not dropout:
            raise InvalidInputError(
                f"uncertainty method {asked.value!r} needs a network with dropout; this "
                "model was trained without (retrain it, or use 'tta' or 'auto')"
            )
    return asked, ""


@contextmanager
def mc_dropout_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Dropout layers in train mode, every other layer in eval mode; on exit the whole
    module is in eval mode.

    Raises
    ------
    InvalidInputError
        The module has no dropout layer.
    """
    layers = dropout_layers(module)
    if not layers:
        raise InvalidInputError("MC dropout needs a network with dropout layers")
    module.eval()
    for layer in layers:
        layer.train()
    try:
        yield module
    finally:
        module.eval()


def bottleneck(net: nn.Module) -> nn.Module:
    """The deepest block of a MONAI ``DynUNet`` (its ``bottleneck``) or ``UNet`` (the
    innermost skip connection's sub-module).

    Raises
    ------
    ValueError
        Another kind of network.
    """
    from monai.networks.layers import SkipConnection

    found = getattr(net, "bottleneck", None)
    if isinstance(found, nn.Module):
        return found
    inner = getattr(net, "model", None)
    if not isinstance(inner, nn.Module):
        raise ValueError(f"no bottleneck in a {type(net).__name__}")
    while True:
        skips = [m for m in inner.children() if isinstance(m, SkipConnection)]
        if not skips:
            return inner
        inner = skips[0].submodule


def bottleneck_dropout(net: nn.Module, rate: float) -> nn.Module:
    """Add channel dropout (``Dropout``, rate ``rate``) to the output of ``net``'s
    deepest block through a forward hook: no parameters are added, so the state dict is
    the same with and without it. ``rate`` 0 leaves the network as it is."""
    if not 0.0 <= rate < 1.0:
        raise InvalidInputError(f"dropout must be within [0, 1), got {rate}")
    if rate == 0:
        return net
    layer = nn.Dropout(rate)
    net.add_module("mc_dropout", layer)

    def drop(_m: nn.Module, _i: Any, out: Any) -> Any:
        return layer(out)

    bottleneck(net).register_forward_hook(drop)
    return net


class SampleStatistics:
    """Running statistics of stochastic class-probability samples ``(classes, ...)``:
    memory for two arrays the size of one sample and each sample's arg-max (uint8),
    however many samples (a 3D volume's samples are not all kept).

    Examples
    --------
    >>> acc = SampleStatistics()
    >>> acc.add(np.array([1.0, 0.0])); acc.add(np.array([0.0, 1.0]))
    >>> [float(v) for v in acc.result()[1:]], acc.disagreement().tolist()
    ([1.0, 1.0], 0.5)
    """

    def __init__(self) -> None:
        self.n = 0
        self._sum: np.ndarray | None = None
        self._entropy_sum: np.ndarray | None = None
        self._argmax: list[np.ndarray] = []

    def add(self, sample: np.ndarray) -> None:
        """Add one sample ``(classes, ...)`` (probabilities summing to 1 over axis 0)."""
        p = np.asarray(sample, np.float64)
        if p.ndim < 1 or (self._sum is not None and p.shape != self._sum.shape):
            want = None if self._sum is None else self._sum.shape
            raise ValueError(f"a sample must be (classes, ...) like {want}, got {p.shape}")
        h = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=0)
        self._sum = p.copy() if self._sum is None else self._sum + p
        self._entropy_sum = h if self._entropy_sum is None else self._entropy_sum + h
        self._argmax.append(np.asarray(p.argmax(axis=0), np.uint8))
        self.n += 1

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``mean``, normalised ``entropy`` of the mean and normalised
        ``mutual_information`` (see :func:`sample_statistics`)."""
        if self._sum is None or self._entropy_sum is None:
            raise ValueError("no samples")
        classes = self._sum.shape[0]
        mean = self._sum / self.n
        ent = -(mean * np.log(np.clip(mean, 1e-12, 1.0))).sum(axis=0)
        expected = self._entropy_sum / self.n
        if classes > 1:
            scale = math.log(classes)
            mi = np.clip((ent - expected) / scale, 0.0, 1.0)
            ent = np.clip(ent / scale, 0.0, 1.0)
        else:
            ent, mi = np.zeros_like(ent), np.zeros_like(ent)
        return mean.astype(np.float32), ent.astype(np.float32), mi.astype(np.float32)

    def disagreement(self) -> np.ndarray:
        """Fraction of samples whose arg-max differs from the mean's, per position."""
        if self._sum is None:
            raise ValueError("no samples")
        idx = self._sum.argmax(axis=0)
        out: np.ndarray = np.mean([a != idx for a in self._argmax], axis=0).astype(np.float32)
        return out


def sample_statistics(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean probabilities, normalised predictive entropy and normalised mutual
    information (BALD) of stochastic samples.

    Parameters
    ----------
    samples
        Class probabilities ``(samples, classes, ...)``.

    Returns
    -------
    tuple
        ``mean`` ``(classes, ...)``; ``entropy`` of the mean divided by ``log(classes)``
        ``(...)``; ``mutual_information`` = entropy of the mean − mean entropy of the
        samples, divided by ``log(classes)`` ``(...)`` (0 when the samples agree). All
        float32 in [0, 1].

    Raises
    ------
    ValueError
        Fewer than 2 dimensions.

    Examples
    --------
    >>> s = np.array([[1.0, 0.0], [0.0, 1.0]])  # two samples that disagree
    >>> [float(v) for v in sample_statistics(s)[1:]]
    [1.0, 1.0]
    """
    p = np.asarray(samples)
    if p.ndim < 2:
        raise ValueError(f"samples must be (samples, classes, ...), got shape {p.shape}")
    acc = SampleStatistics()
    for sample in p:
        acc.add(sample)
    return acc.result()
