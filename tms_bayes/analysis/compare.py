"""Runs of the main job set side by side: the 5 → 6 crossover by every estimator, and F₅ − F₆
against n.

The conventions study (which likelihood scale reproduces the TMS paper's observed crossover?) is
``tms-bayes run`` at σ² = 1/2 and at σ = 1, then :func:`compare_runs` on the two directories.  Each run
directory holds ``smc/report/crossovers.csv`` and ``smc/report/agreement.nc``, written by
:func:`tms_bayes.analysis.smc_report.smc_report`; nothing is recomputed here.

Files (atomic) under ``out/``: ``crossovers.csv`` (one row per run and estimator), ``table.csv`` (the
same as estimators × runs, as printed), ``log_odds.png``
(one panel per run) and ``report.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from ..store.atomic import write_figure, write_text
from ..store.netcdf import open_dataset
from . import plots
from .report import _has_tabulate

__all__ = ["RunComparison", "compare_runs", "read_run"]


def read_run(run_dir) -> tuple[pd.DataFrame, xr.Dataset]:
    """The crossover table and the agreement Dataset of one ``tms-bayes run --estimator smc|both``
    directory; a clear error when the run has no SMC report yet."""
    report = Path(run_dir) / "smc" / "report"
    missing = [name for name in ("crossovers.csv", "agreement.nc") if not (report / name).exists()]
    if missing:
        raise ValueError(
            f"{run_dir} has no {' or '.join(missing)} under smc/report; "
            "run tms-bayes run (estimator smc or both) there first"
        )
    with open_dataset(report / "agreement.nc") as ds:
        agreement = ds.load()
    return pd.read_csv(report / "crossovers.csv"), agreement


@dataclass
class RunComparison:
    crossovers: pd.DataFrame
    agreements: dict[str, xr.Dataset]
    files: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """Estimators as rows, runs as columns: 'n_crit [lower, upper]'."""

        def cell(r):
            if not math.isfinite(r.n_crit):
                return "none on the grid"
            interval = (
                f" [{r.lower:.0f}, {r.upper:.0f}]"
                if math.isfinite(r.lower) and math.isfinite(r.upper)
                else ""
            )
            return f"{r.n_crit:.0f}{interval}"

        df = self.crossovers.assign(cell=[cell(r) for r in self.crossovers.itertuples()])
        order = list(dict.fromkeys(df.estimator))
        return (
            df.pivot(index="estimator", columns="run", values="cell")
            .reindex(order)[list(self.agreements)]
            .reset_index()
        )


def compare_runs(runs: dict[str, str | Path], out) -> RunComparison:
    """Read each run (``{label: run_dir}``) and write the comparison (module docstring)."""
    if not runs:
        raise ValueError("compare needs at least one run directory")
    out = Path(out)
    frames, agreements = [], {}
    for label, run_dir in runs.items():
        cross, ag = read_run(run_dir)
        frames.append(cross.assign(run=label))
        agreements[label] = ag
    comp = RunComparison(pd.concat(frames, ignore_index=True), agreements)
    files = {"crossovers_csv": write_text(out / "crossovers.csv", comp.crossovers.to_csv(index=False))}
    files["table_csv"] = write_text(out / "table.csv", comp.table().to_csv(index=False))
    files["log_odds_png"] = write_figure(out / "log_odds.png", _figure(agreements))
    md = comp.table().to_markdown(index=False) if _has_tabulate() else comp.table().to_string(index=False)
    text = [
        "# Crossover 5 → 6 by estimator, run by run",
        "",
        md,
        "",
        "Intervals: per-dataset crossovers (min–max with ≤ 6 datasets) for the measured and "
        "per-dataset estimators; "
        "the band |ΔF| ≤ 1 for the paper's formula.",
        "",
        "![log-odds](log_odds.png)",
        "",
    ]
    for label, ag in agreements.items():
        counts = ", ".join(
            f"{v} {int((ag.verdict == v).sum())}" for v in ("agree", "disagree", "not comparable")
        )
        text.append(
            f"- {label}: σ = {ag.attrs.get('sigma', math.nan):.4g}, "
            f"β = {ag.attrs.get('beta', math.nan):g}; "
            f"SMC vs per-dataset Laplace: {counts}."
        )
    files["report"] = write_text(out / "report.md", "\n".join(text) + "\n")
    comp.files = files
    return comp


def _figure(agreements: dict[str, xr.Dataset]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.2 * len(agreements), 4.4), layout="constrained")
    axes = fig.subplots(1, len(agreements), squeeze=False)[0]
    for ax, (label, ag) in zip(axes, agreements.items()):
        plots.log_odds(ag, title=f"{label} (σ = {ag.attrs.get('sigma', math.nan):.3g})", ax=ax)
    return fig
