"""The classification task: image-level classes from a label table, with class
probabilities and a saliency map at prediction.

:class:`ClassificationTask` implements :class:`~medlabel.engines.deep.tasks.TaskTrainer`
with three models (``--arch``):

- ``cnn`` (``auto``): a small ResNet trained from scratch on whole images resized to a
  fixed side, with random flips, rotation, scaling, shifts and brightness/contrast
  (parameters drawn per batch from a generator seeded with ``(seed, epoch)``).
- ``medsam-features``: transfer learning: each image goes through the frozen pretrained
  LiteMedSAM encoder once (embeddings cached on disk, see
  :class:`~medlabel.engines.deep.medsam.Embedder`); the mean and maximum of each of its
  256 channels feed an MLP head, the only part trained and stored.
- ``hog-svm`` / ``hog-rf``: the classical baseline: HOG and LBP features
  (scikit-image) with an RBF support vector machine (``probability=True``, ``C`` chosen
  on the validation images) or a random forest (scikit-learn). The estimator is stored
  as ``classifier.joblib`` (a pickle: load only model folders you trust; its SHA-256 is
  in the card and checked on load).

The networks also fit the classical baseline on the same split (seconds) and record its
validation metrics as ``baseline_hog_svm_*`` next to theirs (``--option baseline=false``
skips it). Validation metrics are accuracy and AUC
(:func:`medlabel.quality.classification.roc_auc`; multi-class: the mean one-vs-rest AUC);
the best epoch by AUC is kept.
"""

from __future__ import annotations

import csv
import hashlib
import io
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.core.errors import InvalidInputError, MedlabelError
from medlabel.engines.deep.cls_data import (
    classification_set,
    network_input,
    plane_of,
    raw_input,
)
from medlabel.engines.deep.model_dir import (
    ONNX_FILE,
    Architecture,
    DataItem,
    DataRecord,
    InputSpec,
    LabelInfo,
    ModelCard,
    Normalisation,
    NormScheme,
    TaskKind,
    TrainingConfig,
    load_state,
    write_json,
)
from medlabel.engines.deep.tasks import (
    Example,
    FolderSource,
    Reporter,
    TrainedModel,
    TrainingSet,
)
from medlabel.imaging.volume import Volume

ARCHES = ("cnn", "medsam-features", "hog-svm", "hog-rf")
#: the scikit-learn estimator of the classical baseline inside a model folder
SKLEARN_FILE = "classifier.joblib"
PREDICTIONS_CSV = "predictions.csv"
PREDICTIONS_JSON = "predictions.json"


#: most networks of a cross-validated ensemble (``--option folds``)
MAX_FOLDS = 10


def fold_count(value: Any) -> int:
    """The ``folds`` option as an int: 1 (one network) or 2..``MAX_FOLDS`` (a
    cross-validated ensemble, :mod:`medlabel.engines.deep.cls_folds`); a clear error
    otherwise (``True`` and ``"3"`` are not numbers of folds).

    Examples
    --------
    >>> fold_count(5), fold_count(1)
    (5, 1)
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FOLDS:
        raise InvalidInputError(
            f"folds must be a whole number from 1 (one network) to {MAX_FOLDS}, got {value!r}"
        )
    return value


# data split and metrics --------------------------------------------------------------------
def stratified_split(
    examples: Sequence[Example], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Training and validation examples, ``val_fraction`` of each class (at least one of
    a class with two or more examples) drawn with ``seed``; a given ``split`` is kept."""
    fixed_val = [e for e in examples if e.split == "val"]
    train = [e for e in examples if e.split == "train"]
    val = list(fixed_val)
    free = [e for e in examples if e.split is None]
    rng = np.random.default_rng(seed)
    for cls in sorted({int(e.target) for e in free}):
        members = [e for e in free if int(e.target) == cls]
        order = rng.permutation(len(members))
        n_val = 0
        if val_fraction > 0 and len(members) >= 2 and not fixed_val:
            n_val = max(1, round(len(members) * val_fraction))
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    if not train:
        raise InvalidInputError("no examples left for training after the validation split")
    key = {e.name: i for i, e in enumerate(examples)}
    return sorted(train, key=lambda e: key[e.name]), sorted(val, key=lambda e: key[e.name])


def class_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """``accuracy`` and ``auc`` (binary: of class 1's probability; multi-class: mean
    one-vs-rest AUC over classes present with others). AUC is omitted when undefined.

    Examples
    --------
    >>> class_metrics(np.array([0, 1, 1]), np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    {'accuracy': 0.6666666666666666, 'auc': 1.0}
    """
    from medlabel.quality.classification import roc_auc

    y = np.asarray(y_true, int)
    out = {"accuracy": float(np.mean(probs.argmax(1) == y))}
    aucs = []
    classes = [1] if probs.shape[1] == 2 else range(probs.shape[1])
    for k in classes:
        pos = y == k
        if 0 < pos.sum() < len(y):
            aucs.append(roc_auc(pos, probs[:, k]))
    if aucs:
        out["auc"] = float(np.mean(aucs))
    return out


# the classical baseline -------------------------------------------------------------------
def grey_unit(plane: np.ndarray) -> np.ndarray:
    """A grey ``HOG_SIDE``² image in [0, 1] (8-bit divided by 255, others min–max)."""
    from medlabel.engines.deep.cls_models import HOG_SIDE

    raw = raw_input(plane, 1, (HOG_SIDE, HOG_SIDE))[0]
    if np.asarray(plane).dtype == np.uint8:
        return np.asarray(np.clip(raw / 255.0, 0.0, 1.0), np.float32)
    lo, hi = float(raw.min()), float(raw.max())
    return np.asarray((raw - lo) / max(hi - lo, 1e-8), np.float32)


def classical_features(planes: Sequence[np.ndarray]) -> np.ndarray:
    """HOG + LBP features ``(n, d)`` of 2D images."""
    from medlabel.engines.deep.cls_models import hog_lbp_features

    return np.stack([hog_lbp_features(grey_unit(p)) for p in planes])


def fit_classical(
    arch: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    threads: int,
) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """Fit the classical estimator; SVM ``C`` picked by validation AUC (else accuracy).
    Returns the estimator, its validation metrics and the chosen parameters."""
    from sklearn.calibration import CalibratedClassifierCV  # type: ignore[import-untyped]
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]
    from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]
    from sklearn.svm import SVC  # type: ignore[import-untyped]

    candidates: list[tuple[dict[str, Any], Any]] = []
    if arch == "hog-svm":
        # Platt-scaled probabilities: what SVC(probability=True) did, deprecated since
        # scikit-learn 1.9 in favour of this calibrator
        folds = int(min(5, np.bincount(y_train).min()))
        if folds < 2:
            raise InvalidInputError("the SVM needs at least two training images of each class")
        for c in (0.3, 1.0, 3.0, 10.0):
            svc = SVC(C=c, kernel="rbf", gamma="scale", random_state=seed)
            calibrated = CalibratedClassifierCV(svc, method="sigmoid", cv=folds, ensemble=False)
            params = {"C": c, "kernel": "rbf", "calibration": f"sigmoid, {folds}-fold"}
            candidates.append((params, make_pipeline(StandardScaler(), calibrated)))
    else:
        rf = RandomForestClassifier(
            n_estimators=500, random_state=seed, n_jobs=threads, class_weight="balanced"
        )
        candidates.append(({"n_estimators": 500}, rf))
    best: tuple[float, Any, dict[str, float], dict[str, Any]] | None = None
    for params, est in candidates:
        est.fit(x_train, y_train)
        metrics = class_metrics(y_val, est.predict_proba(x_val)) if len(y_val) else {}
        score = metrics.get("auc", metrics.get("accuracy", 0.0))
        if best is None or score > best[0] + 1e-9:
            best = (score, est, metrics, params)
    assert best is not None
    return best[1], best[2], best[3]


class _NoWeights:
    """Stands in for a network where the model is a scikit-learn estimator."""

    @staticmethod
    def module() -> Any:
        import torch

        return torch.nn.Module()


@dataclass
class SklearnTrainedModel(TrainedModel):
    """A trained classical model: ``classifier.joblib`` beside an empty ``weights.pt``."""

    estimator: Any = None

    def save(self, directory: Path, *, onnx: bool | None = None) -> ModelCard:
        """Write weights and card, then the estimator, then the card with the
        estimator's SHA-256 (a card without it is refused by :class:`ClsModel`)."""
        import joblib  # type: ignore[import-untyped]

        card = super().save(directory, onnx=False)
        buf = io.BytesIO()
        joblib.dump(self.estimator, buf)
        data = buf.getvalue()
        tmp = Path(directory) / (SKLEARN_FILE + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(Path(directory) / SKLEARN_FILE)
        card.inference["estimator_sha256"] = hashlib.sha256(data).hexdigest()
        card.inference["estimator_file"] = SKLEARN_FILE
        card.write(Path(directory))
        self.card = card
        return card


# the task ----------------------------------------------------------------------------------
@dataclass
class _Run:
    """What one training run produced (a network or an estimator) for the card."""

    architecture: Architecture
    input: InputSpec
    module: Any
    history: list[Any] = field(default_factory=list)
    best_epoch: int = 0
    stop_reason: str = ""
    validation: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    estimator: Any = None
    onnx: bool = True


class ClassificationTask:
    """Train and predict image classes (see the module docstring)."""

    task = TaskKind.CLS

    def dataset_from_folder(
        self, source: FolderSource, reporter: Reporter | None = None
    ) -> TrainingSet:
        return classification_set(source, reporter)

    def train(self, data: TrainingSet, config: TrainingConfig, reporter: Reporter) -> TrainedModel:
        from medlabel.engines.deep.loop import seed_everything

        started = time.perf_counter()
        if data.task is not TaskKind.CLS:
            raise InvalidInputError(f"a {data.task.value} training set cannot train classification")
        arch = "cnn" if config.arch == "auto" else config.arch
        if arch not in ARCHES:
            raise InvalidInputError(
                f"unknown architecture {config.arch!r} for classification; choose auto, "
                + ", ".join(ARCHES)
            )
        threads = seed_everything(config.seed, config.threads)
        train, val = stratified_split(data.examples, config.val_fraction, config.seed)
        trained_on, validated_on = train, val
        n_classes = max(len(data.labels), 1 + max(int(e.target) for e in data.examples))
        folds = fold_count(config.options.get("folds", 1))
        ensemble = folds > 1
        if ensemble and arch != "cnn":
            raise InvalidInputError(f"folds (a cross-validated ensemble) need arch cnn, not {arch}")
        if ensemble:
            from medlabel.engines.deep.cls_folds import check_folds, train_cnn_folds

            folds = check_folds(data.examples, folds)
        split = (
            f"{len(data.examples)} images in {folds} folds"
            if ensemble
            else f"{len(train)} training and {len(val)} validation images"
        )
        reporter.log(f"{split}, {n_classes} classes; model {arch}, {threads} thread(s)")
        if ensemble:
            run = train_cnn_folds(data.examples, n_classes, config, reporter, started=started)
            trained_on, validated_on = list(data.examples), []
        elif arch == "cnn":
            from medlabel.engines.deep.cls_training import train_cnn

            run = train_cnn(train, val, n_classes, config, reporter, started=started)
        elif arch == "medsam-features":
            from medlabel.engines.deep.cls_training import train_feature_head

            run = train_feature_head(train, val, n_classes, config, reporter, started=started)
        else:
            run = _train_classical(arch, train, val, config, threads, reporter)
        if arch in ("cnn", "medsam-features") and config.options.get("baseline", True):
            _, metrics, _ = _classical_on(train, val, config, threads)
            run.validation.update({f"baseline_hog_svm_{k}": v for k, v in metrics.items()})
            reporter.log(
                "classical baseline (HOG+LBP, SVM): "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            )
        card = ModelCard(
            task=TaskKind.CLS,
            name=str(config.options.get("name", "")),
            architecture=run.architecture,
            input=run.input,
            labels=[
                LabelInfo(value=i, name=data.labels.get(i, f"class {i}")) for i in range(n_classes)
            ],
            training=config if run.onnx else config.model_copy(update={"onnx": False}),
            plan={**run.plan, "arch": arch, "threads": threads, "seed": config.seed},
            inference=run.inference,
            epochs_run=len(run.history),
            best_epoch=run.best_epoch,
            stop_reason=run.stop_reason,
            history=run.history,
            validation=run.validation,
            data=DataRecord(
                train=[DataItem(name=e.name, revision=e.revision) for e in trained_on],
                val=[DataItem(name=e.name, revision=e.revision) for e in validated_on],
                source=data.source,
            ),
            training_seconds=round(time.perf_counter() - started, 1),
        )
        if run.estimator is not None:
            return SklearnTrainedModel(card, run.module, estimator=run.estimator)
        return TrainedModel(card, run.module)

    def load(self, directory: Path, card: ModelCard, *, backend: str = "auto") -> ClsModel:
        return ClsModel(Path(directory), card, backend=backend)

    def predict_files(
        self, model: Any, images: Sequence[Path], out: Path, reporter: Reporter
    ) -> list[Path]:
        from medlabel.engines.deep.datasets import read_image

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        names = [lab.name for lab in model.card.labels]
        rows: list[dict[str, Any]] = []
        failed: list[str] = []
        for i, path in enumerate(images):
            reporter.check_cancelled()
            try:
                pred = model.predict(read_image(path))
                rows.append({"file": path.name, **pred.as_dict()})
            except MedlabelError as exc:
                failed.append(f"{path.name}: {exc.message}")
            reporter.progress(i + 1, len(images), "predicting")
        if failed:
            listed = "; ".join(failed[:5])
            raise InvalidInputError(
                f"{len(failed)} of {len(images)} image(s) could not be predicted: {listed}"
            )
        csv_path = out / PREDICTIONS_CSV
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "label", "score", *(f"p_{n}" for n in names)])
        for r in rows:
            probs = [f"{r['probabilities'][n]:.6f}" for n in names]
            writer.writerow([r["file"], r["label"], f"{r['score']:.6f}", *probs])
        csv_path.write_text(buf.getvalue(), encoding="utf-8")
        json_path = out / PREDICTIONS_JSON
        write_json(json_path, {"classes": names, "predictions": rows})
        return [csv_path, json_path]


def _classical_on(
    train: Sequence[Example], val: Sequence[Example], config: TrainingConfig, threads: int,
    arch: str = "hog-svm",
) -> tuple[Any, dict[str, float], dict[str, Any]]:  # fmt: skip
    xt = classical_features([plane_of(e.image) for e in train])
    xv = classical_features([plane_of(e.image) for e in val]) if val else np.zeros((0, xt.shape[1]))
    yt = np.array([int(e.target) for e in train])
    yv = np.array([int(e.target) for e in val])
    if len(set(yt.tolist())) < 2:
        raise InvalidInputError("the training split holds a single class; add examples")
    return fit_classical(arch, xt, yt, xv, yv, seed=config.seed, threads=threads)


def _train_classical(
    arch: str,
    train: Sequence[Example],
    val: Sequence[Example],
    config: TrainingConfig,
    threads: int,
    reporter: Reporter,
) -> _Run:
    from medlabel.engines.deep.cls_models import HOG_SIDE

    t0 = time.perf_counter()
    estimator, metrics, params = _classical_on(train, val, config, threads, arch)
    reporter.log(
        f"{arch}: {params}; validation "
        + (", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "none")
        + f" ({time.perf_counter() - t0:.1f} s)"
    )
    return _Run(
        architecture=Architecture(name=arch, params=params),
        input=InputSpec(
            dims=2,
            channels=1,
            patch_size=[HOG_SIDE, HOG_SIDE],
            resize=True,
            normalisation=Normalisation(scheme=NormScheme.NONE),
        ),
        module=_NoWeights.module(),
        validation=metrics,
        best_epoch=0,
        stop_reason="fitted (no epochs)",
        plan={
            "features": "HOG (9 orientations, 8×8 cells, 2×2 blocks) + uniform LBP "
            "(8, r1; 16, r2) + 16-bin intensity histogram on a 64×64 grey image",
            "estimator": params,
            "storage": f"{SKLEARN_FILE} (joblib pickle; trusted folders only)",
        },
        estimator=estimator,
        onnx=False,
    )


# prediction --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassPrediction:
    """The predicted class of one image and the probability of every class."""

    index: int
    label: str
    probabilities: dict[str, float]

    @property
    def score(self) -> float:
        """The probability of the predicted class."""
        return self.probabilities[self.label]

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "score": self.score,
            "probabilities": dict(self.probabilities),
        }


class ClsModel:
    """A classification model folder ready to predict and explain."""

    def __init__(self, directory: Path, card: ModelCard, *, backend: str = "auto") -> None:
        if backend not in ("auto", "torch", "onnx"):
            raise InvalidInputError(f"backend must be auto, torch or onnx, got {backend!r}")
        self.directory = Path(directory)
        self.card = card
        self.names = [lab.name for lab in card.labels]
        self.arch = card.architecture.name
        self.backend = "torch"
        self._net: Any = None
        self._onnx: Any = None
        self._estimator: Any = None
        self._encoder: Any = None
        self._last: tuple[bytes, np.ndarray] | None = None
        if self.arch == "cls-resnet":
            self._load_cnn(backend)
        elif self.arch == "cls-feature-head":
            self._load_head()
        elif self.arch in ("hog-svm", "hog-rf"):
            self._load_estimator()
            self.backend = "scikit-learn"
        else:
            raise InvalidInputError(f"{directory}: unknown classification model {self.arch!r}")

    def _load_cnn(self, backend: str) -> None:
        from medlabel.engines.deep.cls_models import build_resnet

        try:
            self._net = build_resnet(self.card.architecture.params)
        except TypeError as exc:
            raise InvalidInputError(f"{self.directory}: bad network parameters ({exc})") from None
        self._net.load_state_dict(load_state(self.directory))
        self._net.eval()
        onnx_path = self.directory / ONNX_FILE
        if backend == "onnx" or (
            backend == "auto" and onnx_path.is_file() and self.card.onnx and self.card.onnx.faster
        ):
            from medlabel.engines.deep.onnx_export import available, onnx_predictor

            if not (onnx_path.is_file() and available()):
                raise InvalidInputError(
                    f"{self.directory}: ONNX prediction needs {ONNX_FILE} and onnxruntime"
                )
            self._onnx = onnx_predictor(onnx_path)
            self.backend = "onnx"

    def _load_head(self) -> None:
        from medlabel.engines.deep.cls_models import FeatureHead
        from medlabel.engines.deep.medsam import Embedder, check_weights
        from medlabel.engines.interactive.model import load_pretrained

        check_weights(self.card)
        params = dict(self.card.architecture.params)
        head = FeatureHead(**{k: v for k, v in params.items() if k != "encoder_sha256"})
        head.load_state_dict(load_state(self.directory))
        self._net = head.eval()
        net, _ = load_pretrained()
        encoder = net.image_encoder.eval()
        for p in encoder.parameters():
            p.requires_grad_(False)
        self._encoder = Embedder(encoder, None, onnx=False)

    def _load_estimator(self) -> None:
        import joblib

        from medlabel.core.errors import NotFoundError

        path = self.directory / SKLEARN_FILE
        if not path.is_file():
            raise NotFoundError(f"{self.directory}: the estimator file {SKLEARN_FILE} is missing")
        data = path.read_bytes()
        want = self.card.inference.get("estimator_sha256")
        if not want:
            raise InvalidInputError(f"{self.directory}: the card lacks the estimator's SHA-256")
        if hashlib.sha256(data).hexdigest() != want:
            raise InvalidInputError(
                f"{path}: its SHA-256 differs from the card's; refusing to unpickle it"
            )
        self._estimator = joblib.load(io.BytesIO(data))

    # the model's input space -----------------------------------------------------------
    def _inputs(self, image: Volume | np.ndarray) -> tuple[np.ndarray, Any]:
        """The model-space input of ``image`` and what maps it back (a frame or None)."""
        if self.arch == "cls-resnet":
            return network_input(image, self.card.input), None
        if self.arch == "cls-feature-head":
            from medlabel.engines.deep.medsam import frame_input
            from medlabel.engines.deep.segmentation import as_volume

            return frame_input(as_volume(image, None, 2))
        return grey_unit(plane_of(image))[np.newaxis], None

    def _probabilities(self, batch: np.ndarray, frame: Any = None) -> np.ndarray:
        """Probabilities ``(n, classes)`` of model-space inputs ``(n, ...)``."""
        import torch

        if self.arch == "cls-resnet":
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
            with torch.inference_mode():
                logits = self._onnx(x) if self._onnx is not None else self._net(x)
            return torch.softmax(logits.float(), dim=1).numpy()
        if self.arch == "cls-feature-head":
            from medlabel.engines.deep.cls_models import pool_embedding

            feats = np.stack([pool_embedding(self._embed(b), frame.size) for b in batch])
            with torch.inference_mode():
                logits = self._net(torch.from_numpy(feats))
            return torch.softmax(logits.float(), dim=1).numpy()
        from medlabel.engines.deep.cls_models import hog_lbp_features

        feats = np.stack([hog_lbp_features(b[0]) for b in batch])
        probs = np.zeros((len(batch), len(self.names)))
        probs[:, np.asarray(self._estimator.classes_, int)] = self._estimator.predict_proba(feats)
        return probs

    def _embed(self, model_in: np.ndarray) -> np.ndarray:
        """The encoder's embedding, remembered for the last input (predict, then explain)."""
        key = hashlib.sha256(np.ascontiguousarray(model_in).tobytes()).digest()
        if self._last is None or self._last[0] != key:
            self._last = (key, self._encoder(model_in))
        return self._last[1]

    def probabilities(self, image: Volume | np.ndarray) -> np.ndarray:
        """Probability of each class ``(classes,)`` for one 2D image."""
        x, frame = self._inputs(image)
        return np.asarray(self._probabilities(x[np.newaxis], frame)[0])

    def predict(
        self, image: Volume | np.ndarray, spacing: Sequence[float] | None = None
    ) -> ClassPrediction:
        """The class of a 2D image (Volume, or array ``(rows, columns[, 3])``)."""
        p = self.probabilities(image)
        k = int(p.argmax())
        return ClassPrediction(
            index=k,
            label=self.names[k],
            probabilities={n: float(v) for n, v in zip(self.names, p, strict=True)},
        )

    def explain(
        self, image: Volume | np.ndarray, target: int | None = None, *, method: str = "auto"
    ) -> np.ndarray:
        """A saliency heatmap ``(rows, columns)`` in [0, 1] on the image's grid: where the
        evidence for class ``target`` (default: the predicted class) lies.

        ``method``: ``gradcam`` (the networks, ``auto`` there: on the CNN's last stage,
        or on the LiteMedSAM embedding for the feature head) or ``occlusion`` (every
        model, ``auto`` for the classical ones: the probability drop when windows of the
        input are blanked).
        """
        from skimage.transform import resize

        from medlabel.engines.deep.cls_models import embedding_cam, grad_cam, occlusion

        plane = plane_of(image)
        x, frame = self._inputs(image)
        if target is None:
            target = int(self._probabilities(x[np.newaxis], frame)[0].argmax())
        if not 0 <= target < len(self.names):
            raise InvalidInputError(f"target must be a class index 0..{len(self.names) - 1}")
        if method == "auto":
            method = "occlusion" if self.arch in ("hog-svm", "hog-rf") else "gradcam"
        if method == "gradcam":
            if self.arch == "cls-resnet":
                import torch

                heat = grad_cam(self._net, torch.from_numpy(x[np.newaxis]), target)
            elif self.arch == "cls-feature-head":
                heat = embedding_cam(self._net, self._embed(x), frame.size, target)
            else:
                raise InvalidInputError("Grad-CAM needs a network; use method='occlusion'")
        elif method == "occlusion":
            grid = 4 if self.arch == "cls-feature-head" else 8
            heat = occlusion(lambda b: self._probabilities(b, frame), x, target, grid=grid)
        else:
            raise InvalidInputError(f"method must be auto, gradcam or occlusion, got {method!r}")
        if frame is not None:
            heat = heat[: frame.size[0], : frame.size[1]]
        out = resize(heat, plane.shape[:2], order=1, preserve_range=True).astype(np.float32)
        return np.asarray(np.clip(out, 0.0, 1.0), np.float32)


def expected_steps(n: int, batch: int) -> int:
    """Batches per epoch: every training image once (the last partial batch dropped
    when it would hold a single image).

    Examples
    --------
    >>> expected_steps(10, 4), expected_steps(9, 4)
    (3, 2)
    """
    full, rest = divmod(n, batch)
    return max(1, full + (1 if rest > 1 else 0)) if n >= batch else 1


def batch_indices(order: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """Consecutive batches of ``order`` per :func:`expected_steps`."""
    steps = expected_steps(len(order), batch)
    for s in range(steps):
        yield np.sort(order[s * batch : (s + 1) * batch if s < steps - 1 else len(order)])
