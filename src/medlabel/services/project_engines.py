"""The AI box backed by each project's active segmentation model.

The engine registry holds one engine per name per process; the model behind the
``project-model`` engine depends on the image's project (its active ``seg`` model in the
model registry, :mod:`medlabel.services.models`). :class:`ProjectEngines` keeps the few
most recently used of those models loaded, keyed by model version id: a version's files
are never changed, so a key never goes stale, and activating another version simply
asks for another key. The least recently used model is dropped (and its extracted files
deleted) when more than ``max_models`` are loaded.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from medlabel.core.errors import InvalidInputError
from medlabel.engines.base import EngineRequest, Proposal
from medlabel.engines.interactive.trained_model import TrainedModelEngine
from medlabel.imaging.volume import Volume
from medlabel.storage.db.models import ModelVersion

log = logging.getLogger(__name__)

#: the engine name clients ask for (``GET /api/engines``, ``POST .../proposals``)
PROJECT_MODEL = "project-model"
#: loaded models kept per process
DEFAULT_MAX_MODELS = 3
#: bytes of cached class probabilities per loaded model (float16)
DEFAULT_CACHE_BYTES = 256 * 2**20


def engine_identity(row: ModelVersion) -> tuple[str, str]:
    """The engine name and version recorded on proposals (and the revisions accepting
    them) drawn by this model version: ``project-model:<model name>`` and ``v<version>``.

    Examples
    --------
    >>> engine_identity(ModelVersion(name="coins-seg", version=2))
    ('project-model:coins-seg', 'v2')
    """
    return f"{PROJECT_MODEL}:{row.name}"[:100], f"v{row.version}"


def no_model_message() -> str:
    return (
        "this project has no active segmentation model for the AI box (project model): "
        "train one on the Models tab (or activate a trained version there)"
    )


class ProjectModelEngine(TrainedModelEngine):
    """A :class:`TrainedModelEngine` of one stored model version: proposals carry the
    version's name and number, and its id instead of a server path."""

    name = PROJECT_MODEL
    title = "AI box (project model)"
    description = (
        "Draw a box around a structure: the project's active segmentation model (Models "
        "tab) outlines it; click in what it missed or outside what it over-segmented."
    )

    def __init__(self, directory: Path, row: ModelVersion, *, cache_bytes: int) -> None:
        super().__init__(directory, cache_bytes=cache_bytes)
        self.model_id = int(row.id)
        self.name, self.version = engine_identity(row)
        self.model_name = str(row.name)
        self.model_version = int(row.version)

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        out = super().run(volume, request)
        out.info = {
            **out.info,
            "model": f"{self.model_name} v{self.model_version}",
            "model_id": self.model_id,
        }
        return out


Loader = Callable[[Path, ModelVersion], ProjectModelEngine]


class ProjectEngines:
    """Loaded project-model engines, least recently used dropped first (thread-safe).

    Parameters
    ----------
    root
        Where model versions are extracted (one temporary folder per loaded version,
        deleted when it is dropped); the system's temporary folder when None.
    max_models
        Loaded versions kept at most (>= 1).
    cache_bytes
        Memory bound of each engine's cached class probabilities.

    Raises
    ------
    ValueError
        ``max_models`` below 1 or a negative ``cache_bytes``.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        max_models: int = DEFAULT_MAX_MODELS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must not be negative, got {cache_bytes}")
        self.root = root
        self.max_models = int(max_models)
        self.cache_bytes = int(cache_bytes)
        #: how many model versions were loaded (a hit does not count)
        self.loads = 0
        self._engines: OrderedDict[int, tuple[ProjectModelEngine, Path]] = OrderedDict()
        self._loading: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, extract: Callable[[Path], Path], row: ModelVersion) -> ProjectModelEngine:
        """The engine of model version ``row``, loaded on first use.

        ``extract(folder)`` writes the version's model directory into ``folder`` and
        returns it (e.g. :func:`medlabel.services.models.extract_model`). Concurrent
        requests for one version load it once; other versions are served meanwhile.

        Raises
        ------
        InvalidInputError
            ``row`` is not a segmentation model, or its files do not load.
        MissingDependencyError
            torch/MONAI (the ``train`` extra) are not installed.
        """
        if row.task != "seg":
            raise InvalidInputError(
                f"model {row.id} is a {row.task} model; the AI box needs a segmentation model"
            )
        key = int(row.id)
        with self._lock:
            hit = self._hit(key)
            if hit is not None:
                return hit
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                hit = self._hit(key)
                if hit is not None:
                    return hit
            try:
                engine, folder = self._load(extract, row)
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:  # loaded and findable at once: no second load
                self._engines[key] = (engine, folder)
                self._loading.pop(key, None)
                self.loads += 1
                dropped = self._evict()
        for old_key, old_folder in dropped:
            log.info("dropped the AI box engine of model id=%s", old_key)
            shutil.rmtree(old_folder, ignore_errors=True)
        return engine

    def loaded(self, model_id: int) -> bool:
        """Whether the version's engine is loaded now."""
        with self._lock:
            return int(model_id) in self._engines

    def loaded_ids(self) -> list[int]:
        """Ids of the loaded versions, least recently used first."""
        with self._lock:
            return list(self._engines)

    def clear(self) -> None:
        """Drop every loaded engine and delete their files."""
        with self._lock:
            dropped = [folder for _, folder in self._engines.values()]
            self._engines.clear()
        for folder in dropped:
            shutil.rmtree(folder, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------

    def _hit(self, key: int) -> ProjectModelEngine | None:
        found = self._engines.get(key)
        if found is None:
            return None
        self._engines.move_to_end(key)
        return found[0]

    def _evict(self) -> list[tuple[int, Path]]:
        dropped = []
        while len(self._engines) > self.max_models:
            key, (_, folder) = self._engines.popitem(last=False)
            dropped.append((key, folder))
        return dropped

    def _load(
        self, extract: Callable[[Path], Path], row: ModelVersion
    ) -> tuple[ProjectModelEngine, Path]:
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"model-{row.id}-", dir=self.root))
        try:
            directory = extract(folder / "model")
            log.info(
                "loading the AI box engine of model id=%s (%s v%s)", row.id, row.name, row.version
            )
            engine = ProjectModelEngine(directory, row, cache_bytes=self.cache_bytes)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return engine, folder


__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_MAX_MODELS",
    "PROJECT_MODEL",
    "ProjectEngines",
    "ProjectModelEngine",
    "engine_identity",
    "no_model_message",
]
