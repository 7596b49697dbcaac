"""The detection task: boxes with classes and scores, from a CPU-sized centre-point
network.

:class:`DetectionTask` implements :class:`~medlabel.engines.deep.tasks.TaskTrainer`.
The network (``det-centernet``, trained from scratch) sees the whole image resized to a
fixed size (about 128 pixels on the long side by default), and predicts at a quarter of
that resolution: a heatmap per class whose peaks are box centres (penalty-reduced focal
loss on Gaussian targets), the box's log width and height, and the centre's sub-cell
offset (L1 losses at the centres), the CenterNet recipe (Zhou et al. 2019) in a small
residual encoder with one upsampling step. Boxes come from the 3×3 local maxima of the
heatmap, scored by the heatmap, with non-maximum suppression per class. Training keeps
the epoch with the best validation AP50
(:func:`medlabel.quality.boxes.average_precision`). Augmentation: random flips of rows
and columns (boxes follow) and brightness/contrast, drawn from ``(seed, epoch)``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from medlabel.core.errors import InvalidInputError, MedlabelError
from medlabel.engines.deep.cls_data import plane_of, raw_input
from medlabel.engines.deep.cls_models import _Block
from medlabel.engines.deep.det_data import BoxTarget, detection_set
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

STRIDE = 4
BOXES_JSON = "boxes.json"
BOXES_CSV = "boxes.csv"
#: random augmentation of training images (recorded in the card's plan)
AUGMENTATION = {
    "flip_rows": 0.5,
    "flip_columns": 0.5,
    "contrast": [0.8, 1.2],
    "brightness": [-0.2, 0.2],
}


class CenterNet(nn.Module):
    """``(batch, channels, rows, columns)`` → ``(batch, classes + 4, rows/4, columns/4)``:
    heatmap logits per class, log box width and height (in output cells), centre offset
    (x, y) within the cell."""

    def __init__(self, *, in_channels: int, n_classes: int, width: int = 16) -> None:
        super().__init__()
        w = [width, width * 2, width * 4, width * 8]
        self.n_classes = n_classes
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU()
        )
        self.s4 = _Block(w[0], w[1], 2)  # stride 4
        self.s8 = nn.Sequential(_Block(w[1], w[2], 2), _Block(w[2], w[2], 1))
        self.s16 = nn.Sequential(_Block(w[2], w[3], 2), _Block(w[3], w[3], 1))
        self.lat8 = nn.Conv2d(w[3], w[2], 1)
        self.lat4 = nn.Conv2d(w[2], w[1], 1)
        self.fuse = _Block(w[1], w[1], 1)
        self.head = nn.Sequential(
            nn.Conv2d(w[1], w[1], 3, 1, 1), nn.ReLU(), nn.Conv2d(w[1], n_classes + 4, 1)
        )
        last = self.head[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias[:n_classes], -2.19)  # prior probability 0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        up8 = f8 + functional.interpolate(self.lat8(f16), size=f8.shape[2:], mode="nearest")
        up4 = f4 + functional.interpolate(self.lat4(up8), size=f4.shape[2:], mode="nearest")
        out: torch.Tensor = self.head(self.fuse(up4))
        return out


def render_targets(
    boxes: np.ndarray, classes: np.ndarray, n_classes: int, grid: tuple[int, int]
) -> np.ndarray:
    """Training targets ``(classes + 5, rows, columns)`` on the output grid of boxes in
    input pixels: Gaussian heatmaps, log size, offset and the centre mask."""
    rows, cols = grid
    out = np.zeros((n_classes + 5, rows, cols), np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for (x0, y0, x1, y1), k in zip(boxes / STRIDE, classes, strict=True):
        w, h = max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        ix, iy = min(int(cx), cols - 1), min(int(cy), rows - 1)
        sx, sy = max(w / 6.0, 0.8), max(h / 6.0, 0.8)
        g = np.exp(-((xx - ix) ** 2) / (2 * sx**2) - ((yy - iy) ** 2) / (2 * sy**2))
        out[k] = np.maximum(out[k], g)
        out[n_classes : n_classes + 5, iy, ix] = [np.log(w), np.log(h), cx - ix, cy - iy, 1.0]
    return out


def centernet_loss(n_classes: int) -> Any:
    """Focal loss on the heatmaps (α 2, β 4, normalised by the number of boxes), L1 on
    log size (weight 1) and offset (weight 1) at the centres."""

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = n_classes
        p = torch.sigmoid(out[:, :k]).clamp(1e-4, 1 - 1e-4)
        t = target[:, :k]
        pos = (t >= 1.0 - 1e-6).float()
        neg = 1.0 - pos
        pos_loss = torch.log(p) * (1 - p) ** 2 * pos
        neg_loss = torch.log(1 - p) * p**2 * (1 - t) ** 4 * neg
        mask = target[:, k + 4 : k + 5]
        n = mask.sum().clamp(min=1.0)
        focal = -(pos_loss.sum() + neg_loss.sum()) / n
        reg = (torch.abs(out[:, k : k + 4] - target[:, k : k + 4]) * mask).sum() / n
        return focal + reg

    return loss


def decode(
    out: np.ndarray,
    n_classes: int,
    *,
    top_k: int = 20,
    min_score: float = 0.05,
    nms_iou: float = 0.5,
    max_boxes: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes ``(n, 4)`` in input pixels, scores ``(n,)`` and classes ``(n,)`` from one
    network output ``(classes + 4, rows, columns)``: 3×3 heatmap peaks, best ``top_k``
    above ``min_score``, then non-maximum suppression per class."""
    from torchvision.ops import batched_nms  # type: ignore[import-untyped]

    t = torch.from_numpy(np.asarray(out, np.float32))
    heat = torch.sigmoid(t[:n_classes])
    peaks = heat * (functional.max_pool2d(heat[None], 3, 1, 1)[0] == heat).float()
    flat = peaks.flatten()
    scores, idx = flat.topk(min(top_k, flat.numel()))
    keep = scores >= min_score
    scores, idx = scores[keep], idx[keep]
    rows, cols = heat.shape[1:]
    k = idx // (rows * cols)
    cell = idx % (rows * cols)
    iy, ix = cell // cols, cell % cols
    w = torch.exp(t[n_classes, iy, ix])
    h = torch.exp(t[n_classes + 1, iy, ix])
    cx = ix.float() + t[n_classes + 2, iy, ix]
    cy = iy.float() + t[n_classes + 3, iy, ix]
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * STRIDE
    if len(boxes):
        kept = batched_nms(boxes, scores, k, nms_iou)[:max_boxes]
        boxes, scores, k = boxes[kept], scores[kept], k[kept]
    return boxes.numpy().astype(np.float64), scores.numpy().astype(np.float64), k.numpy()


def _input_size(examples: Sequence[Example], asked: Any) -> tuple[int, int]:
    """(rows, columns): asked, else the median image shape scaled to 128 on the long
    side, multiples of 16."""
    if asked:
        r, c = (int(v) for v in asked)
        return r, c
    shapes = np.array([plane_of(e.image).shape[:2] for e in examples], float)
    r, c = np.median(shapes, axis=0)
    s = 128.0 / max(r, c)
    return max(32, int(round(r * s / 16) * 16)), max(32, int(round(c * s / 16) * 16))


def _to_input(boxes: np.ndarray, image_shape: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    sy, sx = size[0] / image_shape[0], size[1] / image_shape[1]
    out: np.ndarray = np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])
    return out


def mean_ap50(
    preds: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    refs: Sequence[BoxTarget],
    n_classes: int,
) -> float:
    """AP50 averaged over the classes that have reference boxes."""
    from medlabel.quality.boxes import average_precision

    aps = []
    for k in range(n_classes):
        r = [t.boxes[t.classes == k] for t in refs]
        if not sum(len(x) for x in r):
            continue
        p = [b[c == k] for b, _, c in preds]
        s = [sc[c == k] for _, sc, c in preds]
        aps.append(average_precision(p, s, r, iou_threshold=0.5))
    return float(np.mean(aps)) if aps else 0.0


class DetectionTask:
    """Train and predict boxes (see the module docstring)."""

    task = TaskKind.DET

    def dataset_from_folder(
        self, source: FolderSource, reporter: Reporter | None = None
    ) -> TrainingSet:
        return detection_set(source, reporter)

    def train(self, data: TrainingSet, config: TrainingConfig, reporter: Reporter) -> TrainedModel:
        from medlabel.engines.deep.loop import LoopSettings, fit, seed_everything
        from medlabel.engines.deep.segmentation import split_examples

        started = time.perf_counter()
        if data.task is not TaskKind.DET:
            raise InvalidInputError(f"a {data.task.value} training set cannot train detection")
        if config.arch not in ("auto", "det-centernet"):
            raise InvalidInputError(
                f"unknown architecture {config.arch!r} for detection; choose auto or det-centernet"
            )
        threads = seed_everything(config.seed, config.threads)
        train, val = split_examples(data.examples, config.val_fraction, config.seed)
        n_classes = len(data.labels)
        opts = config.options
        size = _input_size(train, opts.get("input_size"))
        grid = (size[0] // STRIDE, size[1] // STRIDE)
        channels = 3 if any(plane_of(e.image).ndim == 3 for e in train) else 1

        def arrays(examples: Sequence[Example]) -> tuple[np.ndarray, list[np.ndarray]]:
            x = np.stack([raw_input(plane_of(e.image), channels, size) for e in examples])
            b = [_to_input(e.target.boxes, plane_of(e.image).shape[:2], size) for e in examples]
            return x, b

        raw_t, boxes_t = arrays(train)
        classes_t = [np.asarray(e.target.classes) for e in train]
        scale = 255.0 if all(plane_of(e.image).dtype == np.uint8 for e in train) else 1.0
        unit = raw_t / scale
        norm = Normalisation(
            scheme=NormScheme.FIXED,
            mean=[float(v) for v in unit.mean(axis=(0, 2, 3))],
            std=[float(max(v, 1e-6)) for v in unit.std(axis=(0, 2, 3))],
            scale=scale,
        )
        xt = norm.apply(raw_t, channel_axis=1)
        xv = norm.apply(arrays(val)[0], channel_axis=1) if val else None
        reporter.log(
            f"{len(train)} training and {len(val)} validation images, {n_classes} class(es); "
            f"input {size[0]}×{size[1]}, {threads} thread(s)"
        )
        width = int(opts.get("width", 16))
        params = {"in_channels": channels, "n_classes": n_classes, "width": width}
        net = CenterNet(**params)
        batch = config.batch_size or min(16, len(train))
        steps = max(1, len(train) // batch)

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            rng = np.random.default_rng([config.seed, epoch])
            order = rng.permutation(len(train))
            for s in range(steps):
                pick = np.sort(order[s * batch : (s + 1) * batch])
                xs, ts = [], []
                for i in pick:
                    x, b = xt[i].copy(), boxes_t[i].copy()
                    if config.augment:
                        if rng.random() < 0.5:
                            x = x[:, :, ::-1]
                            b[:, [0, 2]] = size[1] - b[:, [2, 0]]
                        if rng.random() < 0.5:
                            x = x[:, ::-1, :]
                            b[:, [1, 3]] = size[0] - b[:, [3, 1]]
                        x = x * rng.uniform(0.8, 1.2) + rng.uniform(-0.2, 0.2)
                    xs.append(np.ascontiguousarray(x, np.float32))
                    ts.append(render_targets(b, classes_t[i], n_classes, grid))
                yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ts))

        def validate(module: nn.Module) -> tuple[dict[str, float], float | None]:
            assert xv is not None
            preds = []
            for i, e in enumerate(val):
                out = module(torch.from_numpy(xv[i : i + 1]))[0].numpy()
                b, s, k = decode(out, n_classes, min_score=0.01)
                shape = plane_of(e.image).shape[:2]
                preds.append((_from_input(b, shape, size), s, k))
            return {"ap50": mean_ap50(preds, [e.target for e in val], n_classes)}, None

        settings = LoopSettings(
            max_epochs=config.epochs or 100,
            steps_per_epoch=steps,
            learning_rate=config.learning_rate or 2e-3,
            weight_decay=float(opts.get("weight_decay", 1e-4)),
            patience=config.patience or 20,
            budget_seconds=config.minutes * 60.0 if config.minutes else None,
            started=started,
            score="ap50",
        )
        result = fit(net, centernet_loss(n_classes), batches, validate if val else None,
                     settings, reporter)  # fmt: skip
        card = ModelCard(
            task=TaskKind.DET,
            name=str(opts.get("name", "")),
            architecture=Architecture(name="det-centernet", params=params),
            input=InputSpec(
                dims=2,
                channels=channels,
                modality=train[0].image.modality,
                patch_size=list(size),
                resize=True,
                normalisation=norm,
            ),
            labels=[LabelInfo(value=i, name=data.labels[i]) for i in range(n_classes)],
            training=config,
            plan={
                "input_size": list(size),
                "stride": STRIDE,
                "batch_size": batch,
                "steps_per_epoch": steps,
                "max_epochs": settings.max_epochs,
                "learning_rate": settings.learning_rate,
                "patience": settings.patience,
                "augmentation": AUGMENTATION if config.augment else None,
                "seed": config.seed,
                "threads": threads,
            },
            inference={"min_score": 0.05, "nms_iou": 0.5, "max_boxes": 10, "top_k": 20},
            epochs_run=len(result.history),
            best_epoch=result.best_epoch,
            stop_reason=result.stop_reason,
            history=result.history,
            validation=result.best_metrics,
            data=DataRecord(
                train=[DataItem(name=e.name, revision=e.revision) for e in train],
                val=[DataItem(name=e.name, revision=e.revision) for e in val],
                source=data.source,
            ),
            training_seconds=round(time.perf_counter() - started, 1),
        )
        return TrainedModel(card, net)

    def load(self, directory: Path, card: ModelCard, *, backend: str = "auto") -> DetModel:
        return DetModel(Path(directory), card, backend=backend)

    def predict_files(
        self, model: Any, images: Sequence[Path], out: Path, reporter: Reporter
    ) -> list[Path]:
        from medlabel.engines.deep.datasets import read_image

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        results: dict[str, list[dict[str, Any]]] = {}
        failed: list[str] = []
        for i, path in enumerate(images):
            reporter.check_cancelled()
            try:
                results[path.name] = [b.as_dict() for b in model.predict(read_image(path))]
            except MedlabelError as exc:
                failed.append(f"{path.name}: {exc.message}")
            reporter.progress(i + 1, len(images), "predicting")
        if failed:
            raise InvalidInputError(
                f"{len(failed)} of {len(images)} image(s) could not be predicted: "
                + "; ".join(failed[:5])
            )
        json_path = out / BOXES_JSON
        write_json(json_path, {"classes": [lab.name for lab in model.card.labels],
                               "images": results})  # fmt: skip
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "label", "score", "xmin", "ymin", "xmax", "ymax"])
        for name, boxes in results.items():
            for b in boxes:
                coords = [f"{b[c]:.1f}" for c in ("xmin", "ymin", "xmax", "ymax")]
                writer.writerow([name, b["label"], f"{b['score']:.5f}", *coords])
        csv_path = out / BOXES_CSV
        csv_path.write_text(buf.getvalue(), encoding="utf-8")
        return [json_path, csv_path]


def _from_input(boxes: np.ndarray, image_shape: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    """Boxes in input pixels back to image pixels, clipped to the image."""
    sy, sx = image_shape[0] / size[0], image_shape[1] / size[1]
    out: np.ndarray = np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, image_shape[1])
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, image_shape[0])
    return out


@dataclass(frozen=True)
class Box:
    """A predicted box in image pixels (``x`` along columns, ``y`` along rows)."""

    label: str
    score: float
    xmin: float
    ymin: float
    xmax: float
    ymax: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "score": round(self.score, 5),
            "xmin": round(self.xmin, 2),
            "ymin": round(self.ymin, 2),
            "xmax": round(self.xmax, 2),
            "ymax": round(self.ymax, 2),
        }


class DetModel:
    """A detection model folder ready to predict (torch or ONNX Runtime)."""

    def __init__(self, directory: Path, card: ModelCard, *, backend: str = "auto") -> None:
        if backend not in ("auto", "torch", "onnx"):
            raise InvalidInputError(f"backend must be auto, torch or onnx, got {backend!r}")
        if card.architecture.name != "det-centernet":
            raise InvalidInputError(
                f"{directory}: unknown detection model {card.architecture.name!r}"
            )
        self.directory = Path(directory)
        self.card = card
        self.n_classes = len(card.labels)
        try:
            self._net = CenterNet(**card.architecture.params)
        except TypeError as exc:
            raise InvalidInputError(f"{directory}: bad network parameters ({exc})") from None
        self._net.load_state_dict(load_state(self.directory))
        self._net.eval()
        self._onnx: Any = None
        self.backend = "torch"
        onnx_path = self.directory / ONNX_FILE
        if backend == "onnx" or (
            backend == "auto" and onnx_path.is_file() and card.onnx and card.onnx.faster
        ):
            from medlabel.engines.deep.onnx_export import available, onnx_predictor

            if not (onnx_path.is_file() and available()):
                raise InvalidInputError(
                    f"{directory}: ONNX prediction needs {ONNX_FILE} and onnxruntime"
                )
            self._onnx = onnx_predictor(onnx_path)
            self.backend = "onnx"

    def predict(
        self, image: Volume | np.ndarray, spacing: Sequence[float] | None = None
    ) -> list[Box]:
        """Boxes of a 2D image (Volume or ``(rows, columns[, 3])``), best score first."""
        from medlabel.engines.deep.cls_data import network_input

        plane = plane_of(image)
        x = torch.from_numpy(network_input(plane, self.card.input)[None])
        with torch.inference_mode():
            out = self._onnx(x) if self._onnx is not None else self._net(x)
        inf = self.card.inference
        b, s, k = decode(
            out[0].float().numpy(),
            self.n_classes,
            top_k=int(inf.get("top_k", 20)),
            min_score=float(inf.get("min_score", 0.05)),
            nms_iou=float(inf.get("nms_iou", 0.5)),
            max_boxes=int(inf.get("max_boxes", 10)),
        )
        size = (self.card.input.patch_size[0], self.card.input.patch_size[1])
        boxes = _from_input(b, plane.shape[:2], size)
        names = [lab.name for lab in self.card.labels]
        return [
            Box(names[int(c)], float(sc), *(float(v) for v in box))
            for box, sc, c in zip(boxes, s, k, strict=True)
        ]
