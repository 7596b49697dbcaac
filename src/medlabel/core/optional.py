"""Lazy import of optional dependencies, naming the extra that provides them."""

from __future__ import annotations

import importlib
import importlib.util
import threading
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
    # one import at a time: two threads importing the same heavy package (a model preloading
    # while a job starts) can otherwise see it half-initialised and fail
    with _IMPORT_LOCK:
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            if _installed(module) and not isinstance(exc, ModuleNotFoundError):
                raise  # installed but broken: its own message says more than ours
            error = exc
    raise MissingDependencyError(
        f"{feature} needs the optional package {module!r}: "
        f"install it with `pip install 'medlabel[{extra}]'`"
    ) from error


_IMPORT_LOCK = threading.RLock()


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False
