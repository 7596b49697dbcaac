"""Registration and the engine protocol; one run of each engine on a real CT slice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medlabel.engines.base import AnnotationEngine, ParamKind
from medlabel.engines.classical import ENGINES, register
from medlabel.engines.registry import EngineRegistry
from medlabel.engines.runner import run
from tests.engines.classical.phantoms import ct_small, on_plane, request

NAMES = ["threshold", "region-grow", "watershed", "random-walker", "edge-fill", "tissue-classes"]


def test_registering_twice_is_refused() -> None:
    reg = EngineRegistry()
    register(reg)
    with pytest.raises(ValueError, match="already registered"):
        register(reg)


def test_every_engine_is_registered_and_satisfies_the_protocol() -> None:
    reg = EngineRegistry()
    register(reg)
    assert reg.names() == NAMES
    for name in NAMES:
        engine = reg.get(name)
        assert isinstance(engine, AnnotationEngine)
        assert engine.name == name and engine.version == "1"
        assert engine.title and engine.description
        assert set(engine.required) <= set(engine.prompts)
        for spec in engine.params:
            if spec.kind is ParamKind.CHOICE:
                assert spec.default in spec.choices
            elif spec.default is not None:
                assert spec.parse(spec.default) == spec.default


PROMPTS = {
    "threshold": {"positive": (on_plane(25, 58),), "params": {"low": 200}},
    "region-grow": {"positive": (on_plane(51, 59),)},
    "watershed": {"positive": (on_plane(51, 59),), "negative": (on_plane(25, 58),)},
    "random-walker": {
        "positive": (on_plane(51, 59),),
        "box": (on_plane(38, 44), on_plane(66, 74)),
    },
    "edge-fill": {  # the canal opens into a foramen on the right: a box closes it
        "positive": (on_plane(51, 59),),
        "box": (on_plane(40, 42), on_plane(62, 72)),
    },
    "tissue-classes": {"positive": (on_plane(25, 58),)},
}


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.name)
def test_real_ct_slice_smoke(engine: type) -> None:
    vol = ct_small()
    previous = np.zeros(vol.spatial_shape, bool)
    previous[0, 10:20, 10:20] = True  # accepted and ignored: the service merges
    prop = run(engine(), vol, request(previous=previous, **PROMPTS[engine.name]))
    assert prop.mask.shape == (1, 128, 128)
    assert prop.mask.any()
    assert not prop.mask[0, 10:20, 10:20].all()
    json.dumps(prop.info)  # JSON-serialisable facts
    assert prop.prompt["previous"] == {"voxels": 100}
