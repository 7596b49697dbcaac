"""``medlabel bench``: measure engines on labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from medlabel.cli.bench_learn import learn
from medlabel.cli.common import console, err_console, progress, reporting
from medlabel.core.errors import InvalidInputError

if TYPE_CHECKING:
    from medlabel.engines.registry import EngineRegistry

app = typer.Typer(help="Measure annotation engines on labelled data.", no_args_is_help=True)
app.command("learn")(learn)


def _labels(text: str | None) -> tuple[int, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--labels takes integers like 1,2; got {text!r}") from None


def _params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--param takes NAME=VALUE; got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _model_registry(engine: str, model: Path | None) -> EngineRegistry | None:
    """The default engines plus ``trained-model`` on ``model`` when that engine is
    asked for; None (the default registry) otherwise."""
    from medlabel.engines.interactive import TRAINED_MODEL, register_trained_model

    if engine != TRAINED_MODEL:
        if model is not None:
            raise InvalidInputError(
                f"--model is for --engine {TRAINED_MODEL}; engine {engine!r} takes no model"
            )
        return None
    if model is None:
        raise InvalidInputError(
            f"engine {TRAINED_MODEL!r} needs --model DIR: a segmentation model folder "
            "written by `medlabel train --task seg`"
        )
    from medlabel.engines.registry import default_registry

    registry = default_registry()
    register_trained_model(registry, model)
    return registry


@app.command("interactive")
def interactive(
    images: Annotated[Path, typer.Option("--images", help="Folder of images.")],
    masks: Annotated[Path, typer.Option("--masks", help="Folder of reference masks.")],
    engine: Annotated[str, typer.Option("--engine", "-e", help="Engine name.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON report to write.")],
    max_clicks: Annotated[
        int, typer.Option("--max-clicks", min=0, help="Corrective clicks after the first prompt.")
    ] = 20,
    jitter: Annotated[
        float,
        typer.Option("--jitter", min=0.0, max=1.0, help="Box edge jitter, fraction of its size."),
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the box jitter.")] = 0,
    stop_dice: Annotated[
        float,
        typer.Option("--stop-dice", min=0.0, max=1.0, help="Stop prompting at this Dice."),
    ] = 0.99,
    first_prompt: Annotated[
        str,
        typer.Option("--first-prompt", help="box, box-click or click (the first prompt)."),
    ] = "box",
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Mask labels to benchmark, e.g. 1,2 (default: all)."),
    ] = None,
    axis: Annotated[
        int, typer.Option("--axis", min=0, max=2, help="Slice axis prompted in volumes.")
    ] = 0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N pairs by name.")
    ] = None,
    mask_suffix: Annotated[
        str, typer.Option("--mask-suffix", help="Suffix of mask names, e.g. _1stHO.")
    ] = "",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Engine parameter NAME=VALUE.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="Segmentation model folder (`medlabel train --task seg`) for "
            "--engine trained-model.",
        ),
    ] = None,
) -> None:
    """Simulated annotator: box, then clicks on the largest error; Dice per prompt, NoC@85
    and NoC@90, seconds per prompt, and a manual polygon baseline."""
    from medlabel.quality.interactive_bench import run_benchmark
    from medlabel.quality.interactive_sim import SimOptions

    with reporting():
        try:
            options = SimOptions(
                max_clicks=max_clicks,
                jitter=jitter,
                seed=seed,
                stop_dice=stop_dice,
                first_prompt=first_prompt,
                axis=axis,
                labels=_labels(labels),
                limit=limit,
                mask_suffix=mask_suffix,
                params=_params(param or []),
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        with progress() as bar:
            task = bar.add_task(f"{engine}", total=None)

            def report(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, description=f"{engine} {name}")

            registry = _model_registry(engine, model)
            result = run_benchmark(
                images, masks, engine, options, registry=registry, progress=report
            )
        payload = result.to_json()
        if model is not None:
            payload["summary"]["options"]["model"] = str(model)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(payload, indent=1) + "\n")
        except OSError as exc:
            err_console.print(f"[bold red]error:[/] cannot write {out}: {exc.strerror}")
            raise typer.Exit(1) from None
    _print_summary(payload["summary"], out)


def _print_summary(s: dict[str, Any], out: Path) -> None:
    def fmt(v: float | None, digits: int = 3) -> str:
        return "n/a" if v is None else f"{v:.{digits}f}"

    console.print(
        f"{s['engine']} {s['engine_version']}: {s['cases']} case(s) from {s['pairs']} image(s), "
        f"{s['failed_cases']} failed\n"
        f"  Dice first prompt {fmt(s['mean_dice_first_prompt'])}, "
        f"last {fmt(s['mean_dice_last_prompt'])}\n"
        f"  NoC@85 {fmt(s['noc85'], 2)}, NoC@90 {fmt(s['noc90'], 2)} "
        f"(of at most {s['max_prompts']} prompts)\n"
        f"  seconds per prompt p50 {fmt(s['p50_seconds_per_prompt'])}, "
        f"p95 {fmt(s['p95_seconds_per_prompt'])}\n"
        f"  manual polygon vertices for Dice 0.90: {fmt(s['manual_vertices_dice90'], 1)}\n"
        f"  report: {out}",
        highlight=False,
    )
