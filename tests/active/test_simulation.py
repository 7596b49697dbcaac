"""``medlabel bench learn``: the simulated labelling loop on tiny real images (coins
crops from scikit-image), its report, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlabel.active.simulation import CurveSettings, run_curve
from medlabel.cli.main import app
from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import TrainingConfig
from medlabel.engines.deep.tasks import LoggingReporter
from tests.engines.deep.conftest import _need_train_extra, coins_crops, write_png_pairs

runner = CliRunner()
TINY = ["--option", "samples_per_epoch=4", "--option", "base_filters=4", "--threads", "1"]


@pytest.fixture
def coins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    return write_png_pairs(tmp_path / "coins", coins_crops(12), suffix="_mask")


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
def test_learning_curve_report(tmp_path: Path, coins: tuple[Path, Path]) -> None:
    images, masks = coins
    out = tmp_path / "curve.json"
    code, stdout, err = run(
        "bench", "learn", "--task", "seg", "--images", str(images), "--masks", str(masks),
        "--mask-suffix", "_mask", "--strategy", "uncertainty-diversity", "--steps", "3,5",
        "--epochs", "1", "--minutes", "5", "--arch", "dynunet", "--out", str(out),
        "--uncertainty", "mc-dropout", *TINY,
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["settings"]["uncertainty"] == "mc-dropout"
    assert report["task"] == "seg" and report["metric"] == "mean_dice"
    # 12 pairs: 20 % (2) held out for testing, 10 in the pool
    assert report["test_cases"] == 2 and report["training_cases"] == 10
    curves = report["strategies"]
    assert set(curves) == {"random", "uncertainty-diversity"}
    for rounds in curves.values():
        assert [r["labelled"] for r in rounds] == [3, 5]
        assert all(0.0 <= r["metrics"]["mean_dice"] <= 1.0 for r in rounds)
        assert len(rounds[0]["picked"]) == 2 and rounds[-1]["picked"] == []
        assert rounds[0]["epochs"] == 1
    # only the model-based strategy spends time scoring the pool
    assert curves["random"][0]["score_seconds"] == 0.0
    assert curves["uncertainty-diversity"][0]["score_seconds"] > 0.0
    rows = report["comparison"]
    assert [r["labelled"] for r in rows] == [3, 5]
    for row in rows:
        diff = row["uncertainty-diversity"] - row["random"]
        assert row["uncertainty-diversity_minus_random"] == pytest.approx(diff, abs=1e-4)
    assert "labelled:" in stdout and str(out) in stdout


@pytest.mark.slow
def test_strategies_start_from_the_same_cases_and_pick_new_ones(
    coins: tuple[Path, Path],
) -> None:
    from medlabel.engines.deep.datasets import segmentation_set
    from medlabel.engines.deep.segmentation import SegmentationTask
    from medlabel.engines.deep.tasks import FolderSource

    images, masks = coins
    data = segmentation_set(FolderSource(images, masks, mask_suffix="_mask"))
    test = list(data.examples[:2])
    settings = CurveSettings(
        steps=(3, 6),
        pool=None,
        training=TrainingConfig(
            epochs=1, threads=1, arch="dynunet", options={"samples_per_epoch": 4, "base_filters": 4}
        ),
    )
    reporter = LoggingReporter()
    trainer = SegmentationTask()
    picked = {}
    for name in ("uncertainty", "diversity"):
        rounds = run_curve(trainer, data, test, name, settings, reporter)
        picked[name] = rounds[0].picked
        assert len(set(rounds[0].picked)) == 3
    # both start from the same seeded draw of three cases and never pick them again
    import numpy as np

    first = {data.examples[i].name for i in np.random.default_rng(0).permutation(12)[:3]}
    assert all(not first & set(p) for p in picked.values())


def test_settings_refuse_bad_steps() -> None:
    with pytest.raises(InvalidInputError, match="increase"):
        CurveSettings(steps=(10, 5))
    with pytest.raises(InvalidInputError, match="at least 2"):
        CurveSettings(steps=(1, 5))
    with pytest.raises(InvalidInputError, match="unknown uncertainty method 'bald'"):
        CurveSettings(uncertainty="bald")
    with pytest.raises(InvalidInputError, match="at least 2 samples"):
        CurveSettings(mc_samples=1)


def test_scoring_uses_the_model_features_and_the_asked_method(tmp_path: Path) -> None:
    from medlabel.active.simulation import score
    from medlabel.engines.deep.datasets import read_image
    from medlabel.engines.deep.model_dir import TaskKind
    from medlabel.engines.deep.tasks import Example
    from tests.engines.deep.signals import load, old_copy, train_seg

    _need_train_extra()
    directory = train_seg(tmp_path)
    model, old = load(directory), load(old_copy(directory, tmp_path))
    bottom = model.card.architecture.params["filters"][-1]
    image = read_image(tmp_path / "coins" / "images" / "case_0.png")
    ex = Example(name="case_0", image=image, target=None)
    mc = CurveSettings(uncertainty="mc-dropout", mc_samples=3)
    cand = score(TaskKind.SEG, model, ex, 4, settings=mc)
    assert cand.embedding_kind == "model-features" and cand.embedding is not None
    assert len(cand.embedding) == 2 * bottom and cand.uncertainty is not None
    bare = score(TaskKind.SEG, model, ex, 4, settings=mc, embed=False)
    assert bare.embedding is None and bare.uncertainty == cand.uncertainty  # seeded by key
    with pytest.raises(InvalidInputError, match="trained without"):
        score(TaskKind.SEG, old, ex, 4, settings=mc)
    assert score(TaskKind.SEG, old, ex, 4).uncertainty is not None  # auto: flips


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--steps", "3,50"], "up to 50 labelled cases"),
        (["--steps", "a,b"], "--steps takes integers"),
        (["--strategy", "clever"], "unknown active-learning strategy"),
        (["--task", "det"], "takes --task seg or cls"),
        (["--uncertainty", "bald"], "unknown uncertainty method"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, coins: tuple[Path, Path], extra: list[str], needle: str
) -> None:
    images, masks = coins
    code, _, err = run(
        "bench", "learn", "--images", str(images), "--masks", str(masks), "--mask-suffix",
        "_mask", "--epochs", "1", "--out", str(tmp_path / "r.json"), *TINY, *extra,
    )  # fmt: skip
    assert code == 1, err
    assert "Traceback" not in err and needle in err, err
    assert not (tmp_path / "r.json").exists()
