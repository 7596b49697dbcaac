"""Classical (model-free) annotation engines: fast, deterministic, no optional dependency.

======================  ===================================================  ==========
name                    what it does                                         3D
======================  ===================================================  ==========
``threshold``           intensity range (Otsu's threshold as a guide)        yes
``region-grow``         connected pixels near the seed's intensity           yes
``watershed``           marker-based watershed on the gradient               no
``random-walker``       random walks from object and background markers      no
``edge-fill``           fill from a click up to the Canny edges              no
``tissue-classes``      k-means / Gaussian-mixture intensity classes         no
======================  ===================================================  ==========

Each runs on one slice in well under 0.1 s on a 512×512 image (see
``benchmarks/bench_classical.py``). Proposals are the tool's region alone: a previous
mask in the request is accepted and ignored, the service merges the proposal into it.
"""

from __future__ import annotations

from medlabel.engines.classical.edge_fill import EdgeFillEngine
from medlabel.engines.classical.random_walker import RandomWalkerEngine
from medlabel.engines.classical.region_grow import RegionGrowEngine
from medlabel.engines.classical.threshold import ThresholdEngine, otsu_suggestion
from medlabel.engines.classical.tissue_classes import TissueClassesEngine
from medlabel.engines.classical.watershed import WatershedEngine
from medlabel.engines.registry import EngineRegistry

ENGINES = (
    ThresholdEngine,
    RegionGrowEngine,
    WatershedEngine,
    RandomWalkerEngine,
    EdgeFillEngine,
    TissueClassesEngine,
)


def register(registry: EngineRegistry) -> None:
    """Register every classical engine under its name (the class is the factory).

    Examples
    --------
    >>> reg = EngineRegistry()
    >>> register(reg)
    >>> reg.names()
    ['threshold', 'region-grow', 'watershed', 'random-walker', 'edge-fill', 'tissue-classes']
    """
    for engine in ENGINES:
        registry.register(engine.name, engine)


__all__ = [
    "ENGINES",
    "EdgeFillEngine",
    "RandomWalkerEngine",
    "RegionGrowEngine",
    "ThresholdEngine",
    "TissueClassesEngine",
    "WatershedEngine",
    "otsu_suggestion",
    "register",
]
