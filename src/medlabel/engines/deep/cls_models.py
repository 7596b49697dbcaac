"""Networks and features for image classification, and saliency maps.

- ``cls-resnet``: a small residual network trained from scratch (stem, four stages of
  two basic blocks, global average pooling, dropout, linear layer), sized for images of
  28–128 pixels; with ``members`` ≥ 2 in its parameters, an ensemble of such networks
  (one per cross-validation fold) whose probabilities are averaged.
- ``cls-feature-head``: an MLP on fixed feature vectors (pooled embeddings of the frozen
  LiteMedSAM encoder), with the training features' mean and standard deviation stored
  as buffers.
- :func:`hog_lbp_features`: the classical baseline's hand-made features (histogram of
  oriented gradients and uniform local binary pattern histograms, scikit-image).
- :func:`grad_cam` and :func:`occlusion`: where the network looks (heatmaps in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return functional.relu(y + self.skip(x))


class SmallResNet(nn.Module):
    """ResNet-style classifier: ``(batch, channels, rows, columns)`` → logits
    ``(batch, n_classes)``. ``features`` is the last convolutional stage (Grad-CAM)."""

    def __init__(
        self, *, in_channels: int, n_classes: int, width: int = 32, dropout: float = 0.2
    ) -> None:
        super().__init__()
        if n_classes < 2 or in_channels < 1 or width < 4:
            raise ValueError(f"bad SmallResNet({in_channels=}, {n_classes=}, {width=})")
        w = [width, width * 2, width * 4, width * 8]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU()
        )
        stages: list[nn.Module] = []
        cin = w[0]
        for i, cout in enumerate(w):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(_Block(cin, cout, stride), _Block(cout, cout, 1)))
            cin = cout
        self.features = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(self.stem(x))
        out: torch.Tensor = self.fc(self.dropout(f.mean(dim=(2, 3))))
        return out


class ResNetEnsemble(nn.Module):
    """Several :class:`SmallResNet` of the same shape; returns the logarithm of their mean
    class probabilities, so a softmax of the output gives the averaged probabilities."""

    def __init__(self, members: Sequence[SmallResNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two networks")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x), dim=1) for m in self.members]).mean(0)
        out: torch.Tensor = torch.log(probs.clamp_min(1e-12))
        return out


def build_resnet(params: dict[str, object]) -> SmallResNet | ResNetEnsemble:
    """The ``cls-resnet`` network of a card's parameters: one :class:`SmallResNet`, or a
    :class:`ResNetEnsemble` of ``members`` of them (raises ``TypeError`` on bad keys)."""
    args = dict(params)
    members = int(args.pop("members", 1))  # type: ignore[call-overload]
    if members < 2:
        return SmallResNet(**args)  # type: ignore[arg-type]
    return ResNetEnsemble([SmallResNet(**args) for _ in range(members)])  # type: ignore[arg-type]


def resnet_members(net: nn.Module) -> list[SmallResNet]:
    """The single networks inside a ``cls-resnet`` module (itself when it is one)."""
    if isinstance(net, ResNetEnsemble):
        return [m for m in net.members if isinstance(m, SmallResNet)]
    if isinstance(net, SmallResNet):
        return [net]
    raise TypeError(f"not a cls-resnet network: {type(net).__name__}")


class FeatureHead(nn.Module):
    """Standardise a feature vector, then ``Linear → ReLU → Dropout → Linear``
    (``hidden`` 0: a linear classifier)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, *, in_features: int, n_classes: int, hidden: int = 256, dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))
        layers: list[nn.Module] = [nn.Dropout(dropout * 0.5)]
        if hidden:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout)]
            layers.append(nn.Linear(hidden, n_classes))
        else:
            layers.append(nn.Linear(in_features, n_classes))
        self.mlp = nn.Sequential(*layers)

    def set_statistics(self, features: np.ndarray) -> None:
        """Store the mean and standard deviation of training features ``(n, d)``."""
        self.mean.copy_(torch.from_numpy(features.mean(0).astype(np.float32)))
        self.std.copy_(torch.from_numpy(np.maximum(features.std(0), 1e-6).astype(np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp((x - self.mean) / self.std)
        return out


def pool_embedding(embedding: np.ndarray, frame_size: Sequence[int]) -> np.ndarray:
    """A feature vector of a LiteMedSAM embedding ``(256, 64, 64)``: the mean and the
    maximum of each channel over the cells covering the image (not the padding).

    Examples
    --------
    >>> pool_embedding(np.ones((256, 64, 64), np.float16), (256, 128)).shape
    (512,)
    """
    rows = max(1, int(np.ceil(frame_size[0] / 4)))
    cols = max(1, int(np.ceil(frame_size[1] / 4)))
    e = np.asarray(embedding, np.float32)[:, :rows, :cols]
    return np.concatenate([e.mean(axis=(1, 2)), e.max(axis=(1, 2))]).astype(np.float32)


#: the classical baseline's fixed grey image side and descriptor settings
HOG_SIDE = 64
LBP_SETTINGS = ((8, 1.0), (16, 2.0))


def hog_lbp_features(grey: np.ndarray) -> np.ndarray:
    """HOG and LBP features of a grey image already resized to ``HOG_SIDE``² in [0, 1].

    HOG: 9 orientations, 8×8-pixel cells, 2×2-cell blocks (L2-Hys). LBP: uniform
    patterns with 8 neighbours at radius 1 and 16 at radius 2, as normalised
    histograms, plus a 16-bin intensity histogram.

    Examples
    --------
    >>> hog_lbp_features(np.zeros((64, 64), np.float32)).shape
    (1808,)
    """
    from skimage.feature import hog, local_binary_pattern

    if grey.shape != (HOG_SIDE, HOG_SIDE):
        raise ValueError(f"expected a {HOG_SIDE}×{HOG_SIDE} image, got {grey.shape}")
    parts = [
        hog(
            grey,
            orientations=9,
            pixels_per_cell=(8, 8),
            cells_per_block=(2, 2),
            block_norm="L2-Hys",
            feature_vector=True,
        )
    ]
    img8 = np.clip(grey * 255.0, 0, 255).astype(np.uint8)
    for points, radius in LBP_SETTINGS:
        codes = local_binary_pattern(img8, points, radius, method="uniform")
        hist, _ = np.histogram(codes, bins=points + 2, range=(0, points + 2))
        parts.append(hist / max(hist.sum(), 1))
    hist, _ = np.histogram(grey, bins=16, range=(0.0, 1.0))
    parts.append(hist / max(hist.sum(), 1))
    return np.concatenate(parts).astype(np.float32)


def grad_cam(net: nn.Module, x: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM of class ``target`` for one input ``(1, channels, rows, columns)``: the
    last stage's activations weighted by their mean gradients, ReLU, upsampled to the
    input and scaled to [0, 1] (all 0 when nothing is positive). For an ensemble, the
    mean of its networks' maps before scaling."""
    cams = [_member_cam(m, x, target) for m in resnet_members(net)]
    out = torch.stack(cams).mean(0).numpy().astype(np.float32)
    peak = float(out.max())
    return out / peak if peak > 0 else np.zeros_like(out)


def _member_cam(net: SmallResNet, x: torch.Tensor, target: int) -> torch.Tensor:
    """One network's Grad-CAM ``(rows, columns)``, not scaled."""
    acts: list[torch.Tensor] = []

    def keep(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        out.retain_grad()
        acts.append(out)

    handle = net.features.register_forward_hook(keep)
    was_training = net.training
    net.eval()
    try:
        with torch.enable_grad():
            inp = x.detach().clone().requires_grad_(True)
            logits = net(inp)
            net.zero_grad(set_to_none=True)
            logits[0, target].backward()
        a = acts[0]
        assert a.grad is not None
        weights = a.grad.mean(dim=(2, 3), keepdim=True)
        cam = functional.relu((weights * a).sum(dim=1, keepdim=True))
        cam = functional.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)
    finally:
        handle.remove()
        net.train(was_training)
    return cam[0, 0].detach()


def occlusion(
    probability: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    target: int,
    *,
    grid: int = 6,
    fill: float = 0.0,
) -> np.ndarray:
    """Occlusion sensitivity: the drop of class ``target``'s probability when each cell
    of a ``grid``×``grid`` partition (with half-cell overlapping windows) of the input
    ``(channels, rows, columns)`` is set to ``fill``, averaged per pixel and scaled to
    [0, 1].

    ``probability`` maps a batch ``(n, channels, rows, columns)`` to probabilities
    ``(n, classes)``.
    """
    _, rows, cols = x.shape
    wr, wc = max(1, rows // grid), max(1, cols // grid)
    sr, sc = max(1, wr // 2), max(1, wc // 2)
    starts = [(r, q) for r in range(0, rows - wr + 1, sr) for q in range(0, cols - wc + 1, sc)]
    base = float(probability(x[np.newaxis])[0, target])
    batch = np.repeat(x[np.newaxis], len(starts), axis=0)
    for i, (r, q) in enumerate(starts):
        batch[i, :, r : r + wr, q : q + wc] = fill
    probs = np.concatenate(
        [probability(batch[i : i + 16])[:, target] for i in range(0, len(batch), 16)]
    )
    heat = np.zeros((rows, cols), np.float64)
    count = np.zeros((rows, cols), np.float64)
    for (r, q), p in zip(starts, probs, strict=True):
        heat[r : r + wr, q : q + wc] += base - float(p)
        count[r : r + wr, q : q + wc] += 1
    heat = np.where(count > 0, heat / np.maximum(count, 1), 0.0)
    heat = np.maximum(heat, 0.0)
    peak = float(heat.max())
    return (heat / peak if peak > 0 else heat).astype(np.float32)


def embedding_cam(
    head: FeatureHead, embedding: np.ndarray, frame_size: Sequence[int], target: int
) -> np.ndarray:
    """Grad-CAM of a :class:`FeatureHead` on a LiteMedSAM embedding ``(256, 64, 64)``:
    the embedding weighted by the mean gradient of each channel (through the pooling of
    :func:`pool_embedding`), ReLU, as a 256×256 frame map in [0, 1] (no encoder pass
    backwards, so it costs one encoder pass)."""
    rows = max(1, int(np.ceil(frame_size[0] / 4)))
    cols = max(1, int(np.ceil(frame_size[1] / 4)))
    was_training = head.training
    head.eval()
    try:
        with torch.enable_grad():
            e = torch.from_numpy(np.asarray(embedding, np.float32)).requires_grad_(True)
            cells = e[:, :rows, :cols]
            feats = torch.cat([cells.mean(dim=(1, 2)), cells.amax(dim=(1, 2))])
            logits = head(feats[None])
            logits[0, target].backward()
        assert e.grad is not None
        weights = e.grad[:, :rows, :cols].mean(dim=(1, 2)).view(-1, 1, 1)
        cam = functional.relu((weights * e.detach()).sum(0))
        cam[rows:, :] = 0
        cam[:, cols:] = 0
        up = functional.interpolate(
            cam[None, None], scale_factor=4, mode="bilinear", align_corners=False
        )
    finally:
        head.train(was_training)
    out = up[0, 0].numpy().astype(np.float32)
    peak = float(out.max())
    return out / peak if peak > 0 else np.zeros_like(out)
