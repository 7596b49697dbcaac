"""``medlabel eval``: compare prediction masks with reference masks, file by file."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medlabel.cli.common import HomeOption, console, err_console, progress, reporting
from medlabel.core.errors import InvalidInputError, MedlabelError

if TYPE_CHECKING:
    from medlabel.quality.report import (
        Case,
        Pairing,
        PredKind,
        Report,
        ReportOptions,
        SkippedCase,
        Sources,
    )


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"{option} takes integers like 1,2; got {text!r}") from None


def _spacing(text: str | None) -> tuple[float, ...] | None:
    if text is None or not text.strip():
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not 1 <= len(values) <= 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise InvalidInputError(
            "--spacing takes 1 to 3 positive numbers in mm: 0.5 (square pixels), "
            f"ROW,COLUMN or PLANE,ROW,COLUMN; got {text!r}"
        )
    return values


def _names(text: str | None) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        try:
            out[int(key)] = value.strip()
        except ValueError:
            sep = ""
        if not sep or not value.strip():
            raise InvalidInputError(f"--label-names takes 1=liver,2=tumour; got {text!r}")
    return out


def evaluate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the report files.")],
    pred: Annotated[
        Path | None, typer.Option("--pred", help="Folder of predicted masks (or --pairs).")
    ] = None,
    ref: Annotated[
        Path | None, typer.Option("--ref", help="Folder of reference masks (or --pairs).")
    ] = None,
    roi: Annotated[
        Path | None,
        typer.Option("--roi", help="Folder of region-of-interest masks (e.g. field of view)."),
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option("--pairs", help="CSV with columns pred,ref[,roi][,name] instead of folders."),
    ] = None,
    pred_suffix: Annotated[
        str, typer.Option("--pred-suffix", help="Removed from prediction names, e.g. _2ndHO.")
    ] = "",
    ref_suffix: Annotated[
        str, typer.Option("--ref-suffix", help="Removed from reference names, e.g. _1stHO.")
    ] = "",
    roi_suffix: Annotated[
        str, typer.Option("--roi-suffix", help="Removed from ROI names, e.g. _mask.")
    ] = "",
    labels: Annotated[
        str | None, typer.Option("--labels", help="Labels to evaluate, e.g. 1,2 (default: all).")
    ] = None,
    label_names: Annotated[
        str | None, typer.Option("--label-names", help="Names shown, e.g. 1=liver,2=tumour.")
    ] = None,
    tolerance_mm: Annotated[
        float, typer.Option("--tolerance-mm", min=0.0, help="Surface Dice (NSD) tolerance, mm.")
    ] = 1.0,
    spacing: Annotated[
        str | None,
        typer.Option(
            "--spacing",
            help="Pixel size in mm of PNG/JPEG/TIFF/GIF files: 0.5 or ROW,COLUMN (default 1). "
            "NIfTI files use their own.",
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Graded predictions (probabilities) are foreground above this fraction of "
            "full scale.",
        ),
    ] = 0.5,
    pred_kind: Annotated[
        str, typer.Option("--pred-kind", help="auto, labels or scores: how to read predictions.")
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the bootstrap.")] = 0,
    resamples: Annotated[
        int, typer.Option("--resamples", min=1, help="Bootstrap resamples per interval.")
    ] = 2000,
    title: Annotated[str, typer.Option("--title", help="Heading of the HTML report.")] = (
        "Segmentation evaluation"
    ),
    allow_skipped: Annotated[
        bool,
        typer.Option(
            "--allow-skipped",
            help="Exit with 0 even if some cases could not be evaluated (they are listed).",
        ),
    ] = False,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", help="Evaluate inside this project (name or id) instead of folders."
        ),
    ] = None,
    reader: Annotated[
        str | None, typer.Option("--reader", help="With --project: the reader (username).")
    ] = None,
    engine: Annotated[
        str | None, typer.Option("--engine", help="With --project: the engine (model) name.")
    ] = None,
    which: Annotated[
        str, typer.Option("--which", help="With --project: latest or approved revisions.")
    ] = "latest",
    home: HomeOption = None,
) -> None:
    """Evaluate predicted masks against reference masks (metrics, CIs, plots).

    Writes report.html, report.json, cases.csv and summary.csv to --out.
    Files pair by name; see --pred-suffix, --ref-suffix or --pairs.
    Unreadable or mismatched cases are skipped, listed, and make the exit code 1.
    With --project and --reader or --engine, a reader or an engine of a project is
    evaluated against the project's reference (approved consensus, else approved
    readings) and the report is also stored in the project.
    """
    if project is not None:
        if pred or ref or roi or pairs:
            with reporting():
                raise InvalidInputError("give either --project or --pred/--ref (or --pairs)")
        from medlabel.cli.evaluate_project import evaluate_project

        evaluate_project(
            home,
            project,
            reader=reader,
            engine=engine,
            which=which,
            tolerance_mm=tolerance_mm,
            seed=seed,
            out=out,
        )
        return
    from medlabel.quality.report import (
        PredKind,
        ReportOptions,
        pair_files,
        pairs_from_csv,
    )

    with reporting():
        try:
            kind = PredKind(pred_kind)
        except ValueError:
            raise InvalidInputError(
                f"--pred-kind is auto, labels or scores; got {pred_kind!r}"
            ) from None
        options = ReportOptions(
            labels=_ints(labels, "--labels"),
            label_names=_names(label_names),
            tolerance_mm=tolerance_mm,
            seed=seed,
            n_resamples=resamples,
            title=title,
        )
        pixel = _spacing(spacing)
        if pairs is not None:
            if pred or ref or roi:
                raise InvalidInputError("give either --pairs or --pred/--ref/--roi folders")
            pairing = pairs_from_csv(pairs)
        else:
            if pred is None or ref is None:
                raise InvalidInputError("give --pred and --ref folders (or a --pairs CSV)")
            pairing = pair_files(
                pred,
                ref,
                roi,
                pred_suffix=pred_suffix,
                ref_suffix=ref_suffix,
                roi_suffix=roi_suffix,
            )
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"--out {out} is a file; give a folder")
        _warn_unmatched(pairing)
        sources = _sources(
            pairing,
            {"pred": pred, "ref": ref, "roi": roi, "pairs": pairs},
            {
                "spacing_mm": None if pixel is None else list(pixel),
                "pred_kind": kind.value,
                "threshold": threshold,
                "pred_suffix": pred_suffix,
                "ref_suffix": ref_suffix,
                "roi_suffix": roi_suffix,
            },
            _notes(pixel, kind, threshold),
        )
        report = _run(pairing, options, sources, pixel, kind, threshold)
        written = report.write(out)
    _print(report, written["html"])
    if report.skipped and not allow_skipped:
        err_console.print(
            f"[bold red]error:[/] {len(report.skipped)} of {report.n_cases + len(report.skipped)}"
            " case(s) could not be evaluated (listed above and in the report); pass "
            "--allow-skipped to accept a partial report",
            highlight=False,
        )
        raise typer.Exit(1)


def _warn_unmatched(p: Pairing) -> None:
    for what, names in (
        ("prediction(s) without a reference", p.unmatched_pred),
        ("reference(s) without a prediction", p.unmatched_ref),
        ("ROI file(s) without a case", p.unmatched_roi),
        ("case(s) without an ROI file, not evaluated", p.missing_roi),
    ):
        if names:
            shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
            err_console.print(f"warning: {len(names)} {what}: {shown}", highlight=False)


def _sources(
    pairing: Pairing,
    folders: dict[str, Path | None],
    loading: dict[str, object],
    notes: tuple[str, ...],
) -> Sources:
    from medlabel.quality.report import Sources

    listed = folders["pairs"]
    has_roi = folders["roi"] is not None or any(p.roi for p in pairing.pairs)
    return Sources(
        pred=str(folders["pred"] or f"predictions listed in {listed}"),
        ref=str(folders["ref"] or f"references listed in {listed}"),
        roi=str(folders["roi"] or f"ROI files listed in {listed}") if has_roi else None,
        unmatched_pred=pairing.unmatched_pred,
        unmatched_ref=pairing.unmatched_ref,
        unmatched_roi=pairing.unmatched_roi,
        missing_roi=pairing.missing_roi,
        notes=notes,
        loading=loading,
    )


def _run(
    pairing: Pairing,
    options: ReportOptions,
    sources: Sources,
    pixel: tuple[float, ...] | None,
    kind: PredKind,
    threshold: float,
) -> Report:
    from medlabel.quality.report import SkippedCase, build_report, load_case

    def cases() -> Iterator[Case | SkippedCase]:
        for pair in pairing.pairs:
            try:
                yield load_case(pair, spacing=pixel, pred_kind=kind, threshold=threshold)
            except MedlabelError as exc:
                said = exc.message if exc.message.startswith(pair.name) else None
                err_console.print(
                    f"skipped {said or f'{pair.name}: {exc.message}'}", highlight=False
                )
                yield SkippedCase(pair.name, exc.message)

    with progress() as bar:
        task = bar.add_task("evaluating", total=len(pairing.pairs))

        def report(done: int, name: str) -> None:
            bar.update(task, completed=done, description=f"evaluating {name}")

        return build_report(cases(), options, sources, progress=report)


def _notes(pixel: tuple[float, ...] | None, kind: PredKind, threshold: float) -> tuple[str, ...]:
    spacing = (
        "PNG, JPEG, TIFF and GIF files carry no pixel size: 1 mm is assumed, so their "
        "distances are in pixels."
        if pixel is None
        else f"PNG, JPEG, TIFF and GIF files: pixel size {' × '.join(f'{v:g}' for v in pixel)}"
        " mm (given). NIfTI files use their own spacing."
    )
    reading = {
        "auto": f"Graded predictions (probability or grey-level maps) are foreground above "
        f"{threshold:g} × full scale; reference and ROI masks: non-zero (JPEG, colour and "
        "graded masks: above half scale).",
        "labels": "Prediction values are taken as labels.",
        "scores": f"Predictions are scores, foreground above {threshold:g} × full scale.",
    }[kind.value]
    return (spacing, reading)


def _print(report: Report, html: Path) -> None:
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    console.print(
        f"{report.n_cases} case(s) evaluated, {len(report.skipped)} skipped", highlight=False
    )
    for ls in report.summary:
        parts = []
        for metric in ("dice", "hd95", "sensitivity", "specificity", "accuracy", "auc"):
            m = ls.metrics.get(metric)
            if m is not None and m.mean is not None:
                parts.append(f"{metric} {fmt(m.mean)} [{fmt(m.ci_low)}, {fmt(m.ci_high)}]")
        name = report.options.label_name(ls.label)
        console.print(f"  label {name} ({ls.n_cases} cases): " + ", ".join(parts), highlight=False)
    console.print(f"report: {html}", highlight=False)
