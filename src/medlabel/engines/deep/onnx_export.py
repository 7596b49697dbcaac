"""Export a trained network to ONNX and run it with ONNX Runtime on the CPU.

The export (``model.onnx`` next to ``weights.pt``) takes float32 input of the card's
shape with a dynamic batch axis. It is checked before it is kept: on a seeded random
input, ONNX Runtime's output must match torch's (float32) to ``1e-3`` relative to the
output's range; both are timed (median of several runs, after a warm-up) and the card
records the milliseconds, so prediction uses ONNX Runtime only where it was faster.

ONNX Runtime runs with torch's thread count and without spinning threads (busy-waiting
workers only steal time from other processes on a 2-core machine).
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.engines.deep.model_dir import ONNX_FILE, ModelCard, OnnxInfo

log = logging.getLogger(__name__)

OPSET = 17
#: largest accepted |onnx - torch| relative to the range of torch's output
TOLERANCE = 1e-3


def available() -> bool:
    """Whether ``onnx`` and ``onnxruntime`` are installed (nothing imported)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


def export_if_available(
    directory: Path, card: ModelCard, module: Any, shape: list[int]
) -> ModelCard:
    """Export ``module`` to ``directory/model.onnx`` when onnx/onnxruntime are installed
    and the export matches torch; returns the card (rewritten with :class:`OnnxInfo`),
    or the card unchanged when skipped (the reason is logged)."""
    if not available():
        log.info("onnx/onnxruntime not installed: no ONNX export")
        return card
    path = Path(directory) / ONNX_FILE
    try:
        info = export_onnx(module, shape, path, torch_forward=_card_forward(card, module))
    except (RuntimeError, ValueError, TypeError, OSError, ImportError) as exc:
        path.unlink(missing_ok=True)
        log.warning("ONNX export skipped: %s", exc)
        return card
    out = card.model_copy(deep=True)
    out.onnx = info
    out.versions.update(_onnx_versions())
    out.write(Path(directory))
    return out


def _card_forward(card: ModelCard, module: Any) -> Callable[[Any], Any] | None:
    """The forward pass prediction would use with torch (training precision)."""
    plan = card.plan
    if plan.get("precision", "fp32") == "fp32" and not plan.get("channels_last"):
        return None
    from medlabel.engines.deep.inference import torch_predictor

    return torch_predictor(
        copy.deepcopy(module),
        precision=str(plan.get("precision", "fp32")),
        channels_last=bool(plan.get("channels_last")),
    )


def _onnx_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"onnx": version("onnx"), "onnxruntime": version("onnxruntime")}


def export_onnx(
    module: Any,
    shape: list[int],
    path: Path,
    *,
    torch_forward: Callable[[Any], Any] | None = None,
    repeats: int = 5,
) -> OnnxInfo:
    """Export ``module`` (``torch.nn.Module``) for inputs of ``shape`` (batch dynamic),
    verify it against torch and time both.

    ``torch_forward`` is the torch forward pass to time (default: the module in float32).

    Raises
    ------
    ValueError
        ONNX Runtime's output differs from torch's by more than the tolerance.
    """
    import torch

    net = copy.deepcopy(module).float().eval().to(memory_format=torch.contiguous_format)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen)
    export_plain(net, shape, path)
    session = make_session(path)
    with torch.inference_mode():
        expected = net(x).float().numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    diff = float(np.max(np.abs(got - expected)))
    scale = max(float(np.ptp(expected)), 1.0)
    if not np.isfinite(diff) or diff > TOLERANCE * scale:
        path.unlink(missing_ok=True)
        raise ValueError(f"ONNX output differs from torch by {diff:.3g} (range {scale:.3g})")
    forward = torch_forward or net

    def run_torch() -> None:
        with torch.inference_mode():
            forward(x)

    def run_onnx() -> None:
        session.run(None, {"input": x.numpy()})

    return OnnxInfo(
        file_bytes=path.stat().st_size,
        opset=OPSET,
        max_abs_diff=diff,
        input_shape=list(shape),
        torch_ms=round(_median_ms(run_torch, repeats), 2),
        onnx_ms=round(_median_ms(run_onnx, repeats), 2),
    )


def export_plain(module: Any, shape: list[int], path: Path) -> None:
    """Export ``module`` (float32, eval mode) for input ``shape`` with a dynamic batch
    axis to ``path`` (written to a temporary file, then renamed); no checks."""
    import torch

    net = copy.deepcopy(module).float().eval().to(memory_format=torch.contiguous_format)
    x = torch.zeros(*shape)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation of the TorchScript exporter, norms
        torch.onnx.export(
            net,
            (x,),
            str(tmp),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    os.replace(tmp, path)


def _median_ms(fn: Callable[[], None], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def make_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session: torch's thread count, no spinning."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    opts = ort.SessionOptions()
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_predictor(path: Path) -> Callable[[Any], Any]:
    """A predictor (torch tensor in, torch tensor out) running ``path`` in ONNX Runtime."""
    import torch

    session = make_session(path)

    def run(x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().numpy())
        return torch.from_numpy(session.run(None, {"input": arr})[0])

    return run
