"""The dynamics report: plateaus, visited critical points, transitions and the BAH check of an SGD
experiment (:mod:`tms_bayes.inference.dynamics`), as CSV tables, figures and ``report.md``, all written
atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import xarray as xr

from .. import __version__
from ..store.atomic import write_figure, write_text
from ..theory import critical_points
from . import plots
from .dynamics import (
    bah_check,
    bah_summary,
    label_checkpoints,
    match_plateaus,
    trajectory_table,
    transition_table,
)
from .phases import Rule
from .report import _has_tabulate

__all__ = ["DynamicsReport", "dynamics_report"]


@dataclass
class DynamicsReport:
    plateaus: pd.DataFrame
    sequences: pd.DataFrame
    transitions: pd.DataFrame
    bah: pd.DataFrame
    summary: dict
    files: dict[str, Path] = field(default_factory=dict)


def dynamics_report(
    ds: xr.Dataset,
    out,
    *,
    thresholds: Rule | None = None,
    slope_tol: float = 0.02,
    min_span: float = 2.0,
    loss_tol: float = 0.005,
    example_runs: int = 3,
) -> DynamicsReport:
    """Analyse ``ds`` (from :func:`tms_bayes.inference.dynamics.run_dynamics`) and write the report
    to ``out``."""
    out = Path(out)
    cat = critical_points(int(ds.attrs.get("c", ds.sizes["feature"])))
    labels = label_checkpoints(ds, thresholds)
    plateaus = match_plateaus(
        ds, labels=labels, catalogue=cat, slope_tol=slope_tol, min_span=min_span, loss_tol=loss_tol
    )
    sequences = trajectory_table(plateaus)
    transitions = transition_table(plateaus)
    bah = bah_check(plateaus)
    summary = bah_summary(bah)
    rep = DynamicsReport(plateaus, sequences, transitions, bah, summary)
    for name, df in (
        ("plateaus", plateaus),
        ("sequences", sequences),
        ("transitions", transitions),
        ("bah", bah),
    ):
        rep.files[name] = write_text(out / f"{name}.csv", df.to_csv(index=False))
    rep.files["loss_complexity"] = write_figure(
        out / "loss_complexity.png", plots.loss_complexity(cat, transitions, plateaus)
    )
    # example trajectories: the runs with the most transitions first
    order = (
        sequences.sort_values("transitions", ascending=False).run.tolist()[:example_runs]
        if len(sequences)
        else list(ds.run.values[:example_runs])
    )
    for run in order:
        rep.files[f"run_{run}"] = write_figure(
            out / f"trajectory_run{run:04d}.png", plots.dynamics_trajectory(ds, run, plateaus)
        )
    rep.files["report"] = write_text(out / "report.md", _markdown(rep, ds))
    return rep


def _table(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False) if _has_tabulate() else "```\n" + df.to_string(index=False) + "\n```"


def _bah_by_source(bah: pd.DataFrame) -> pd.DataFrame:
    """Transitions × (λ source, saddle) with their verdict counts: which estimator decided what."""
    g = bah.assign(saddle=bah.saddle.replace("", "no")).groupby(
        ["from", "to", "lambda_source", "saddle"], sort=False
    )
    return g.verdict.value_counts().unstack(fill_value=0).reset_index()


def _markdown(rep: DynamicsReport, ds: xr.Dataset) -> str:
    a = ds.attrs
    finals = (
        rep.sequences.final.value_counts().rename_axis("final critical point").reset_index(name="runs")
        if len(rep.sequences)
        else pd.DataFrame()
    )
    seqs = (
        rep.sequences.sequence.value_counts().rename_axis("sequence").reset_index(name="runs")
        if len(rep.sequences)
        else pd.DataFrame()
    )
    s = rep.summary
    lines = [
        "# SGD dynamics through critical points (TMS)",
        "",
        f"tms-bayes {__version__}; {ds.sizes['run']} runs, c = {a.get('c')}, n = {a.get('n')}, "
        f"{a.get('optimizer')} (batch {a.get('batch_size')}, lr {a.get('lr')}), "
        f"{a.get('epochs')} epochs, start: {a.get('init_k')}-gon of norm {a.get('init_norm')} "
        f"+ N(0, {a.get('init_noise')}²); "
        f"λ̂ by SGLD (ε = {a.get('llc_eps')}, γ = {a.get('llc_gamma')}, "
        f"nβ = {float(a.get('nbeta_used', float('nan'))):.4g}, {a.get('llc_steps')} steps, "
        f"{a.get('llc_chains')} chains).",
        "",
        "## Final critical points",
        _table(finals) if len(finals) else "(no plateaus)",
        "",
        "## Sequences of visited critical points",
        _table(seqs) if len(seqs) else "(none)",
        "",
        "## Transitions",
        _table(rep.transitions) if len(rep.transitions) else "(no transitions observed)",
        "",
        "![loss-complexity](loss_complexity.png)",
        "",
        "## Bayesian Antecedent Hypothesis",
        f"{s['transitions']} transitions: {s['pass']} pass (ΔL < 0 and Δλ > 0), {s['fail']} fail, "
        f"{s['inconclusive']} inconclusive (|Δλ| < 2 SE or λ unknown); {s['at_saddle']} from or to a "
        "saddle of L (λ̂ there is not a learning coefficient). "
        f"ΔL/Δλ increased in {s['ratio_increases']} of {s['consecutive_pairs']} consecutive pairs.",
        "",
        "Each Δλ uses one estimator at both ends: the catalogue's λ where theory gives it at both ends "
        "and neither is a saddle, otherwise λ̂ at both (mean over the plateau's checkpoints ± SE).",
        "",
        _table(_bah_by_source(rep.bah)) if len(rep.bah) else "",
        "",
    ]
    lines += [f"![{k}]({p.name})" for k, p in rep.files.items() if k.startswith("run_")]
    return "\n".join(lines) + "\n"
