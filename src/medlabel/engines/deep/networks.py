"""Network builders by name: a model card's ``architecture`` rebuilds its network.

Each builder takes the card's ``architecture.params`` as keyword arguments and returns a
``torch.nn.Module`` mapping ``(batch, channels, *spatial)`` to logits ``(batch, classes,
*spatial)``. Other tasks add theirs with :func:`register`.

- ``dynunet``: MONAI's ``DynUNet`` (nnU-Net's U-Net: per-level kernels and strides,
  instance norm, leaky ReLU), configured by :mod:`~medlabel.engines.deep.planning`.
- ``unet``: MONAI's residual ``UNet`` (fixed 3×3 kernels, stride 2).
- ``medsam-decoder``: LiteMedSAM's prompt encoder and mask decoder, fine-tuned with a
  whole-image box prompt on embeddings of the frozen pretrained image encoder (see
  :mod:`~medlabel.engines.deep.medsam`).

Every builder takes ``dropout`` (default 0, what cards written before it had): the rate
of a dropout layer on the deepest features (the U-Nets' bottleneck output, the LiteMedSAM
image embedding), used for Monte-Carlo dropout (:mod:`~medlabel.engines.deep.mc_dropout`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medlabel.core.errors import InvalidInputError

Builder = Callable[..., Any]
_BUILDERS: dict[str, Builder] = {}


def register(name: str, builder: Builder) -> None:
    """Add a builder (raises ``ValueError`` if the name is taken)."""
    if name in _BUILDERS:
        raise ValueError(f"a network named {name!r} is already registered")
    _BUILDERS[name] = builder


def build(name: str, params: dict[str, Any]) -> Any:
    """Build the network ``name`` with ``params`` (a card's architecture).

    Raises
    ------
    InvalidInputError
        Unknown name, or parameters the builder does not take.
    """
    _ensure_defaults()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        known = ", ".join(sorted(_BUILDERS))
        raise InvalidInputError(f"unknown network {name!r} (known: {known})") from None
    try:
        return builder(**params)
    except TypeError as exc:
        raise InvalidInputError(f"network {name!r}: bad parameters ({exc})") from None


def _dynunet(
    *,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernels: list[list[int]],
    strides: list[list[int]],
    filters: list[int],
    norm: str = "instance",
    dropout: float = 0.0,
) -> Any:
    from monai.networks.nets import DynUNet

    from medlabel.engines.deep.mc_dropout import bottleneck_dropout

    net = DynUNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=filters,
        norm_name=(norm, {"affine": True}),
        res_block=False,
    )
    return bottleneck_dropout(net, dropout)


def _unet(
    *,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    channels: list[int],
    num_res_units: int = 2,
    norm: str = "instance",
    dropout: float = 0.0,
) -> Any:
    from monai.networks.nets import UNet

    from medlabel.engines.deep.mc_dropout import bottleneck_dropout

    net = UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=channels,
        strides=[2] * (len(channels) - 1),
        num_res_units=num_res_units,
        norm=norm,
    )
    return bottleneck_dropout(net, dropout)


def _medsam(**params: Any) -> Any:
    from medlabel.engines.deep.medsam import build_head

    return build_head(**params)


def _ensure_defaults() -> None:
    for name, builder in (("dynunet", _dynunet), ("unet", _unet), ("medsam-decoder", _medsam)):
        _BUILDERS.setdefault(name, builder)


def parameter_count(module: Any) -> int:
    """Number of parameters of a ``torch.nn.Module``."""
    return int(sum(p.numel() for p in module.parameters()))
