"""The training loop: best epoch kept, early stopping, time budgets (with a fake clock),
cancellation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

from medlabel.engines.deep.loop import LoopSettings, budget_clock, fit  # noqa: E402
from medlabel.engines.deep.tasks import LoggingReporter  # noqa: E402


class Cancelled(BaseException):
    pass


def toy() -> tuple[torch.nn.Module, object, object]:
    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 16)[:, None]
    y = 3 * x + 1

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(4):
            yield x, y

    return net, torch.nn.functional.mse_loss, batches


def test_best_epoch_weights_are_kept_and_patience_stops() -> None:
    net, loss, batches = toy()
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.8, 0.95])
    kept: dict[int, torch.Tensor] = {}

    def validate(module: torch.nn.Module) -> tuple[dict[str, float], float | None]:
        epoch = len(kept) + 1
        kept[epoch] = module.weight.detach().clone()
        return {"mean_dice": next(scores)}, None

    settings = LoopSettings(max_epochs=6, steps_per_epoch=4, learning_rate=0.05, patience=3)
    result = fit(net, loss, batches, validate, settings, LoggingReporter())
    assert result.best_epoch == 2 and result.best_metrics == {"mean_dice": 0.9}
    assert result.stop_reason == "no improvement for 3 epochs" and len(result.history) == 5
    assert torch.equal(net.weight.detach(), kept[2])
    lrs = [r.learning_rate for r in result.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 0.05  # polynomial decay


def test_time_budget_with_a_fake_clock() -> None:
    net, loss, batches = toy()
    now = [0.0]

    def clock() -> float:
        now[0] += 0.1  # every reading: a tenth of a second later
        return now[0]

    settings = LoopSettings(
        max_epochs=100, steps_per_epoch=4, learning_rate=0.05, budget_seconds=30.0,
        started=0.0, clock=clock,
    )  # fmt: skip
    result = fit(net, loss, batches, None, settings, LoggingReporter())
    assert result.stop_reason == "time budget" and 2 <= len(result.history) < 100
    assert result.history[-1].train_loss < result.history[0].train_loss


def test_cancellation_propagates() -> None:
    net, loss, batches = toy()

    class Reporter(LoggingReporter):
        def check_cancelled(self) -> None:
            raise Cancelled()

    with pytest.raises(Cancelled):
        fit(net, loss, batches, None, LoopSettings(2, 4, 0.05), Reporter())


def test_budget_clocks() -> None:
    assert budget_clock("wall", 2)() > 0 and budget_clock("cpu", 2)() > 0
    with pytest.raises(ValueError, match="wall' or 'cpu"):
        budget_clock("gpu", 1)
