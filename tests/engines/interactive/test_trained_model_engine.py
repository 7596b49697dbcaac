"""The interactive engine backed by a trained segmentation model: the structure in the
box, clicks that add and remove voxels without re-running the network, 2D images and
volumes, clear errors, and ``medlabel bench interactive --engine trained-model`` end to
end — on tiny real models trained for a few epochs in the test (seconds): a 2D U-Net on
coins crops with Otsu masks, a 3D U-Net on nibabel's MRI with multi-Otsu labels 1/2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.engines.base import EngineRequest
from medlabel.engines.interactive.box_structure import (
    class_logits,
    mask_region,
    pick_class,
    prompt_region,
)
from medlabel.engines.runner import run
from medlabel.imaging.volume import Volume
from medlabel.quality.overlap import dice
from tests.engines.deep.conftest import (
    _need_train_extra,
    coins_crops,
    write_nifti_cases,
    write_png_pairs,
)

CONFIG: dict[str, Any] = {
    "seed": 1,
    "threads": 1,
    "onnx": False,
    "arch": "dynunet",
    "val_fraction": 0.34,
    "augment": False,
    "options": {"samples_per_epoch": 4, "base_filters": 4},
}


def _train(images: Path, masks: Path, out: Path, epochs: int) -> Path:
    from medlabel.engines.deep.model_dir import TrainingConfig
    from medlabel.engines.deep.tasks import FolderSource, LoggingReporter, get_task

    task = get_task("seg")
    data = task.dataset_from_folder(FolderSource(images=images, masks=masks))
    trained = task.train(data, TrainingConfig(**CONFIG, epochs=epochs), LoggingReporter())
    trained.save(out)
    return out


@pytest.fixture(scope="module")
def data2d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 2D model and its coins folder (images, masks)."""
    _need_train_extra()
    root = tmp_path_factory.mktemp("tm2d")
    images, masks = write_png_pairs(root / "coins", coins_crops(6))
    return _train(images, masks, root / "model", epochs=3), images, masks


@pytest.fixture(scope="module")
def data3d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 3D model and its NIfTI folder (images, labels 1 and 2)."""
    _need_train_extra()
    root = tmp_path_factory.mktemp("tm3d")
    images, masks = write_nifti_cases(root / "mr", 3)
    return _train(images, masks, root / "model", epochs=3), images, masks


def engine_of(directory: Path) -> Any:
    from medlabel.engines.interactive.trained_model import TrainedModelEngine

    return TrainedModelEngine(directory)


def load(path: Path) -> Volume:
    from medlabel.quality.pairs import load_image

    return load_image(path)


def labels_of(engine: Any, volume: Volume) -> np.ndarray:
    """The model's own arg-max labels (values) on the volume."""
    probs, _ = engine.probabilities(volume)
    values = np.array(engine._values)
    out: np.ndarray = values[np.asarray(probs, np.float32).argmax(0)]
    return out


def model_mask(engine: Any, volume: Volume, k: int = 1) -> np.ndarray:
    """Where class value ``k`` beats every other class (the engine's mask in a box
    covering the image, before clicks)."""
    probs = np.asarray(engine.probabilities(volume)[0], np.float32)
    i = engine._values.index(k)
    out: np.ndarray = probs[i] > np.delete(probs, i, axis=0).max(axis=0)
    return out


def box_of(mask: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    lo, hi = mask_region(mask)
    return lo, hi


# --- pure functions, edge cases first ---------------------------------------------------
def test_prompt_region_edges() -> None:
    with pytest.raises(ValueError, match=r"\(N >= 1, 3\)"):
        prompt_region((1, 4, 4), [])
    with pytest.raises(ValueError, match=r"\(N >= 1, 3\)"):
        prompt_region((1, 4, 4), [(1.0, 2.0)])
    # clipped to the image, never empty, margin rounded up per axis
    assert prompt_region((1, 4, 4), [(0, -3, 2), (0, 9, 2)], margin=(0, 0, 0.5)) == (
        slice(0, 1),
        slice(0, 4),
        slice(1, 4),
    )
    assert prompt_region((2, 4, 4), [(5, 5, 5)]) == (slice(1, 2), slice(3, 4), slice(3, 4))


def test_pick_class_and_logits_edges() -> None:
    p = np.zeros((3, 1, 6, 6), np.float32)
    p[0] = 1.0
    with pytest.raises(ValueError, match="classes >= 2"):
        pick_class(p[:1], (slice(0, 1),) * 3)
    region = (slice(0, 1), slice(0, 6), slice(0, 6))
    # no foreground anywhere: class 1, all mass on the background
    idx, masses = pick_class(p, region)
    assert idx == 1 and masses == [36.0, 0.0, 0.0]
    p[:, 0, 0:2, 0:2] = np.array([0.0, 1.0, 0.0])[:, None, None]
    p[:, 0, 2:6, 2:6] = np.array([0.0, 0.0, 1.0])[:, None, None]
    assert pick_class(p, region)[0] == 2  # the larger structure
    assert pick_class(p, (slice(0, 1), slice(0, 3), slice(0, 3)))[0] == 1  # most in the box
    within = np.zeros((1, 6, 6), bool)
    within[0, 0, 0] = True
    assert pick_class(p, region, within=within)[0] == 1
    with pytest.raises(ValueError, match=r"class 3 is outside 0\.\.2"):
        class_logits(p, 3, region)
    lg = class_logits(p, 2, region)
    assert lg.dtype == np.float32 and np.isfinite(lg).all()
    assert (lg > 0).sum() == 16 and lg.max() == pytest.approx(np.log((1 - 1e-4) / 1e-4), rel=1e-4)
    assert mask_region(np.zeros((1, 3, 3), bool)) == []


# --- loading ------------------------------------------------------------------------------
def test_bad_model_directories_are_clear_errors(tmp_path: Path, data2d: tuple) -> None:
    from medlabel.engines.interactive.trained_model import TrainedModelEngine

    with pytest.raises(NotFoundError, match="does not exist"):
        TrainedModelEngine(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotFoundError, match="is not a folder"):
        TrainedModelEngine(tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match="not a model directory"):
        TrainedModelEngine(empty)
    broken = tmp_path / "broken"
    shutil.copytree(data2d[0], broken)
    (broken / "weights.pt").unlink()
    with pytest.raises(NotFoundError, match=r"no weights\.pt"):
        TrainedModelEngine(broken)
    (broken / "weights.pt").write_bytes(b"not a torch file")
    with pytest.raises(InvalidInputError, match="cannot load the model"):
        TrainedModelEngine(broken)
    card = json.loads((broken / "model.json").read_text())
    (broken / "model.json").write_text(json.dumps({**card, "task": "cls"}))
    with pytest.raises(InvalidInputError, match=r"needs a segmentation model|not a valid"):
        TrainedModelEngine(broken)
    (broken / "model.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="not a valid model card") as err:
        TrainedModelEngine(broken)
    assert "\n" not in err.value.message


# --- 2D images ---------------------------------------------------------------------------
def test_box_gives_the_models_structure_inside_the_box(data2d: tuple) -> None:
    directory, images, _ = data2d
    eng = engine_of(directory)
    vol = load(images / "case_0.png")
    predicted = model_mask(eng, vol)
    assert predicted.any()
    lo, hi = box_of(predicted)
    # a box on part of the structure: the answer is the model's mask there, nothing outside
    half = (lo, (hi[0], (lo[1] + hi[1]) // 2, hi[2]))
    req = EngineRequest(box=half, params={"box_margin": 0})
    prop = run(eng, vol, req)
    full = prop.full(vol.spatial_shape)
    inside = np.zeros_like(full)
    inside[0, int(half[0][1]) : int(half[1][1]) + 1, int(half[0][2]) : int(half[1][2]) + 1] = True
    assert full.any() and not (full & ~inside).any()
    assert np.array_equal(full, predicted & inside)
    assert prop.engine == "trained-model" and prop.version == eng.version
    assert eng.version.endswith(eng.sha256[:12]) and len(eng.sha256) == 64
    assert prop.info["label"] == 1 and prop.prompt["box"] and prop.seconds > 0
    assert prop.info["backend"] == "torch" and prop.info["model_sha256"] == eng.sha256
    assert prop.probability is not None and prop.probability.shape == prop.mask.shape
    # asking for a label the model does not have names its labels
    with pytest.raises(ValueError, match="no label 7; its labels: 0"):
        run(eng, vol, EngineRequest(box=half, params={"label": 7}))


def test_clicks_add_and_remove_voxels_without_reinference(data2d: tuple) -> None:
    directory, images, _ = data2d
    eng = engine_of(directory)
    vol = load(images / "case_1.png")
    predicted = model_mask(eng, vol)
    assert eng.inferences == 1
    box = ((0.0, 0.0, 0.0), (0.0, 39.0, 39.0))
    base = run(eng, vol, EngineRequest(box=box)).full(vol.spatial_shape)
    assert np.array_equal(base, predicted)
    miss = tuple(int(v) for v in np.argwhere(~base)[len(np.argwhere(~base)) // 2])
    hit = tuple(int(v) for v in np.argwhere(base)[len(np.argwhere(base)) // 2])
    pos = run(eng, vol, EngineRequest(box=box, positive=(miss,))).full(vol.spatial_shape)
    assert pos[miss] and pos.sum() > base.sum()
    neg = run(eng, vol, EngineRequest(box=box, negative=(hit,))).full(vol.spatial_shape)
    assert not neg[hit] and neg.sum() < base.sum()
    # far from the clicks nothing moves
    far = np.ones_like(base)
    far[0, max(hit[1] - 12, 0) : hit[1] + 13, max(hit[2] - 12, 0) : hit[2] + 13] = False
    assert np.array_equal(neg[far], base[far])
    # every prompt after the first reused the cached probabilities
    assert eng.inferences == 1 and eng.cache.hits >= 3


def test_previous_mask_without_box_is_refined(data2d: tuple) -> None:
    directory, images, _ = data2d
    eng = engine_of(directory)
    vol = load(images / "case_2.png")
    drawn = np.zeros(vol.spatial_shape, bool)
    drawn[0, 10:20, 10:20] = True
    out = run(eng, vol, EngineRequest(previous=drawn, params={"box_margin": 0}))
    full = out.full(vol.spatial_shape)
    assert not (full & ~drawn).any()  # the region is the mask's box
    # the previous mask pulls the answer towards itself
    pulled = run(eng, vol, EngineRequest(previous=drawn, params={"prior_weight": 10}))
    assert dice(pulled.full(vol.spatial_shape), drawn) > dice(full, drawn)
    assert dice(pulled.full(vol.spatial_shape), drawn) > 0.9
    with pytest.raises(ValueError, match="needs a box or previous prompt"):
        run(eng, vol, EngineRequest(positive=((0, 5, 5),)))


# --- volumes -----------------------------------------------------------------------------
def test_volume_box_picks_the_structure_and_clicks_in_3d(data3d: tuple) -> None:
    directory, images, _ = data3d
    eng = engine_of(directory)
    vol = load(images / "mr_0.nii.gz")
    labels = labels_of(eng, vol)
    counts = {k: int((labels == k).sum()) for k in (1, 2)}
    assert all(counts.values()), counts
    probs = np.asarray(eng.probabilities(vol)[0], np.float32)
    for k in (1, 2):
        # a 3-voxel cube where the model sees more of k than of the other structure
        lead = ndimage.uniform_filter(probs[k] - probs[3 - k], 3, mode="constant")
        lead[[0, -1]] = lead[:, [0, -1]] = lead[:, :, [0, -1]] = -np.inf
        centre = np.unravel_index(int(np.argmax(lead)), lead.shape)
        assert lead[centre] > 0
        small = (
            (float(centre[0] - 1), float(centre[1] - 1), float(centre[2] - 1)),
            (float(centre[0] + 1), float(centre[1] + 1), float(centre[2] + 1)),
        )
        prop = run(eng, vol, EngineRequest(index=None, box=small, params={"box_margin": 0}))
        assert prop.info["label"] == k, prop.info
        # and an explicit label wins over the mass in the box
        other = 3 - k
        forced = run(eng, vol, EngineRequest(box=small, params={"label": other}))
        assert forced.info["label"] == other
    big = box_of(labels == 2)
    base = run(eng, vol, EngineRequest(box=big)).full(vol.spatial_shape)
    hit = tuple(int(v) for v in np.argwhere(base)[len(np.argwhere(base)) // 2])
    neg = run(eng, vol, EngineRequest(box=big, negative=(hit,))).full(vol.spatial_shape)
    assert not neg[hit]
    # the correction reaches the neighbouring planes (3D), not only the clicked one
    changed = np.argwhere(base & ~neg)
    assert len(set(changed[:, 0].tolist())) > 1
    assert eng.inferences == 1
    # a request on one slice of the volume answers on that slice only
    one = run(eng, vol, EngineRequest(axis=0, index=hit[0], box=big))
    assert one.mask.shape[0] == 1 and one.origin[0] == hit[0]


def test_model_and_image_must_match(data2d: tuple, data3d: tuple) -> None:
    eng3 = engine_of(data3d[0])
    flat = Volume.from_spacing(np.zeros((1, 20, 20), np.float32))
    with pytest.raises(ValueError, match="this model is 3D"):
        run(eng3, flat, EngineRequest(box=((0, 2, 2), (0, 8, 8))))
    eng2 = engine_of(data2d[0])
    rgb = Volume.from_spacing(np.zeros((1, 20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="takes 1-channel images"):
        run(eng2, rgb, EngineRequest(box=((0, 2, 2), (0, 8, 8))))
    # a 2D model segments a volume plane by plane
    vol = Volume.from_spacing(np.stack([data_plane(i) for i in range(3)]))
    probs, _ = eng2.probabilities(vol)
    assert probs.shape == (2, 3, 40, 40)


def data_plane(i: int) -> np.ndarray:
    return coins_crops(3)[i][0]


# --- the benchmark -----------------------------------------------------------------------
runner = CliRunner()


def bench(*args: str) -> tuple[int, str, str]:
    from medlabel.cli.main import app

    result = runner.invoke(app, ["bench", "interactive", *args])
    return result.exit_code, result.stdout, result.stderr


def test_bench_cli_on_images_and_volumes(tmp_path: Path, data2d: tuple, data3d: tuple) -> None:
    for (directory, images, masks), name in ((data2d, "2d"), (data3d, "3d")):
        out = tmp_path / f"{name}.json"
        code, stdout, err = bench(
            "--images", str(images), "--masks", str(masks), "--engine", "trained-model",
            "--model", str(directory), "--max-clicks", "2", "--limit", "2", "--out", str(out),
        )  # fmt: skip
        assert code == 0, err
        report = json.loads(out.read_text())
        s = report["summary"]
        assert s["engine"] == "trained-model" and s["failed_cases"] == 0
        assert s["options"]["model"] == str(directory)
        assert s["engine_version"].endswith(engine_of(directory).sha256[:12])
        cases = report["cases"]
        assert cases and all(c["error"] is None for c in cases)
        assert all(1 <= len(c["dice"]) <= 3 for c in cases)
        if name == "3d":
            # one 3D box for the volume, clicks anywhere in it
            assert {c["label"] for c in cases} == {1, 2}
            assert all(c["boxes"][0]["box"][0][0] < c["boxes"][0]["box"][1][0] for c in cases)
        assert "NoC@90" in stdout


def test_bench_cli_errors_are_one_line(tmp_path: Path, data2d: tuple) -> None:
    _, images, masks = data2d
    common = ["--images", str(images), "--masks", str(masks), "--out", str(tmp_path / "o.json")]
    for extra, needle in (
        (["--engine", "trained-model"], "needs --model DIR"),
        (["--engine", "trained-model", "--model", str(tmp_path / "no")], "does not exist"),
        (["--engine", "threshold", "--model", str(tmp_path)], "--model is for"),
    ):
        code, _, err = bench(*common, *extra)
        assert code == 1, err
        assert "Traceback" not in err and needle in err, err
        assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err
