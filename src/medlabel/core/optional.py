"""Lazy import of optional dependencies, naming the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

from medlabel.core.errors import MissingDependencyError


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Parameters
    ----------
    module
        Dotted module name, e.g. ``"boto3"``.
    extra
        The ``pip install medlabel[extra]`` that provides it.
    feature
        What the caller wanted to do, for the message.

    Examples
    --------
    >>> require("json", extra="none", feature="parsing").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{feature} needs the optional package {module!r}: "
            f"install it with `pip install 'medlabel[{extra}]'`"
        ) from exc
