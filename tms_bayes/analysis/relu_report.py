"""The ReLU phase-transition report of a truth sweep: phase fractions, critical value, accuracy per
phase, effective-weight pictures, the unsupervised coarse-graining against the hand-drawn phases, and
λ̂ per phase when given.  Everything is written atomically under ``out/``:

``labels.nc``, ``fractions.nc``, ``fractions.csv``, ``trials.csv`` (z-scores and the filter's verdict
for every trial), ``fractions.png``, ``min_loss.png``, ``effective_weights.png``,
``raw_vs_effective.png``, ``embedding.png``, ``llc.csv`` (when λ̂ was estimated) and ``report.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..store.atomic import write_figure, write_netcdf, write_text
from . import plots
from .coarse_grain import CoarseGrainer, agreement
from .phases import relu_features
from .report import _has_tabulate
from .relu_phases import critical_value, phase_fractions, trial_draws, truth_sweep_labels, vanishing_value

__all__ = ["ReluReport", "relu_report", "transition_summary", "coarse_grain_truth_sweep"]

_SYMBOL = {"theta": "θ", "vartheta": "ϑ"}


@dataclass
class ReluReport:
    labels: xr.Dataset
    fractions: xr.Dataset
    transition: dict
    trials: pd.DataFrame
    coarse: dict = field(default_factory=dict)
    llc: xr.Dataset | None = None

    def table(self) -> pd.DataFrame:
        """Phase fractions with intervals, one row per value."""
        f = self.fractions
        rows = {"value": f.value.values, "kept trials": f.kept_trials.values}
        for p in f.phase.values:
            s, lo, hi = (f[k].sel(phase=p).values for k in ("share", "lower", "upper"))
            rows[str(p)] = [f"{a:.3f} [{b:.2f}, {c:.2f}]" for a, b, c in zip(s, lo, hi)]
        return pd.DataFrame(rows)


def transition_summary(frac: xr.Dataset) -> dict:
    """PT1: the value where the degenerate phase overtakes the non-degenerate one; PT2: where the
    annihilation phase vanishes (and an overtaking, if any)."""
    if frac.attrs["experiment"] == "pt1":
        return {"kind": "first-order (overtaking)", **critical_value(frac, "non-degenerate", "degenerate")}
    out = {"kind": "second-order (vanishing)", **vanishing_value(frac, "annihilation")}
    out["overtaking"] = critical_value(frac, "non-annihilation", "annihilation")
    return out


def trial_table(labels: xr.Dataset) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "value": np.repeat(labels.value.values, labels.sizes["trial"]),
            "trial": np.tile(labels.trial.values, labels.sizes["value"]),
            "mean_L_n": labels.mean_L_n.values.ravel(),
            "z": labels.z.values.ravel(),
            "kept": labels.kept.values.ravel(),
        }
    )


def coarse_grain_truth_sweep(sweep, labels: xr.Dataset, *, max_samples: int = 3000, seed: int = 0) -> dict:
    """t-SNE + HDBSCAN on the scaling/permutation-invariant ReLU features of kept draws pooled over
    all values, compared with the hand-drawn phases (adjusted Rand index, over all draws and over the
    draws that fall in a named phase)."""
    rng = np.random.default_rng(seed)
    rows = [
        (i, t, d)
        for i, v in enumerate(labels.value.values)
        for t in np.flatnonzero(labels.kept.values[i])
        for d in range(labels.sizes["draw"])
    ]
    if len(rows) < 10:
        return {}
    take = [rows[k] for k in np.sort(rng.choice(len(rows), size=min(max_samples, len(rows)), replace=False))]
    w, b, q = [], [], []
    for i, t, d in take:
        post = sweep.load(sweep.settings.values.index(float(labels.value.values[i]))).posterior
        w.append(trial_draws(post, "w")[t, d])
        b.append(trial_draws(post, "b")[t, d])
        q.append(trial_draws(post, "q")[t, d])
    hand = np.array([str(labels.label.values[i, t, d]) for i, t, d in take])
    cg = CoarseGrainer(max_samples=max_samples, random_state=seed).fit(
        relu_features(np.array(w), np.array(b), np.array(q))
    )
    hand = hand[cg.sample_index_]
    named = hand != "neither"
    return {
        "embedding": cg.embedding_,
        "clusters": cg.labels_,
        "hand": hand,
        "n_clusters": cg.n_clusters_,
        "ari": agreement(hand, cg.labels_),
        "ari_named": agreement(hand[named], cg.labels_[named]) if named.sum() > 1 else math.nan,
        "samples": len(hand),
    }


def relu_report(
    sweep,
    out,
    *,
    epsilon: float | None = None,
    z_max: float = 1.5,
    llc: xr.Dataset | None = None,
    coarse_grain: bool = True,
    snapshot_value: float | None = None,
    seed: int = 0,
) -> ReluReport:
    """Analyse a finished truth sweep and write the report files (module docstring) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = truth_sweep_labels(sweep, epsilon=epsilon, z_max=z_max)
    frac = phase_fractions(labels, seed=seed)
    trans = transition_summary(frac)
    trials = trial_table(labels)
    rep = ReluReport(labels, frac, trans, trials, llc=llc)
    write_netcdf(out / "labels.nc", labels)
    write_netcdf(out / "fractions.nc", frac.drop_vars("bootstrap"))
    write_text(
        out / "fractions.csv",
        frac[["share", "lower", "upper", "min_L_n", "mean_L_n"]]
        .to_dataframe()
        .reset_index()
        .to_csv(index=False),
    )
    write_text(out / "trials.csv", trials.to_csv(index=False))
    write_figure(out / "fractions.png", plots.phase_fractions(frac, trans if "critical" in trans else None))
    write_figure(out / "min_loss.png", plots.phase_min_loss(frac))
    values = labels.value.values
    shown = (
        values
        if len(values) <= 12
        else values[np.unique(np.round(np.linspace(0, len(values) - 1, 12)).astype(int))]
    )
    write_figure(out / "effective_weights.png", plots.effective_weights_grid(labels, shown))
    v = float(values[-1] if snapshot_value is None else values[np.argmin(np.abs(values - snapshot_value))])
    index = sweep.settings.values.index(v)
    post = sweep.load(index).posterior
    kept = labels.kept.sel(value=v).values
    sym = _SYMBOL.get(sweep.settings.parameter, sweep.settings.parameter)
    write_figure(
        out / "raw_vs_effective.png",
        plots.raw_vs_effective(
            trial_draws(post, "w")[kept],
            trial_draws(post, "q")[kept],
            labels.label.sel(value=v).values[kept],
            title=f"{sweep.settings.experiment.upper()} at {sym} = {v:.4g} (kept trials)",
        ),
    )
    if coarse_grain:
        rep.coarse = coarse_grain_truth_sweep(sweep, labels, seed=seed)
        if rep.coarse:
            write_figure(
                out / "embedding.png",
                plots.embedding(
                    rep.coarse["embedding"],
                    rep.coarse["hand"],
                    rep.coarse["clusters"],
                    ari=rep.coarse["ari"],
                    label_title="hand-drawn phase (ε-regions)",
                ),
            )
    if llc is not None:
        write_text(out / "llc.csv", llc.to_dataframe().reset_index().to_csv(index=False))
    write_text(out / "report.md", _markdown(rep, sweep))
    return rep


def _fmt(x, nd=3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _markdown(rep: ReluReport, sweep) -> str:
    st = sweep.settings
    sym = _SYMBOL.get(st.parameter, st.parameter)
    lab, t = rep.labels, rep.transition
    lines = [
        f"# ReLU {st.experiment.upper()}: phases against {sym}",
        "",
        f"Sweep `{sweep.out}`: {len(lab.value)} values of {sym}, {st.trials} trials each "
        "(one NUTS chain on its own dataset), "
        f"n = {st.n}, β = 1/log n = {st.resolved_beta():.4f}, {st.tune} tuning + {st.draws} kept draws "
        f"per trial, initial points uniform(−{st.init_scale:g}, {st.init_scale:g}).",
        f"Phases with ε = {lab.attrs['epsilon']:g} on effective weights ŵ = |q| w; "
        f"trials with |z| ≥ {lab.attrs['z_max']:g} on mean L_n dropped.",
        "",
        "## Phase fractions (share of draws of kept trials, 95 % bootstrap interval over trials)",
        "",
        rep.table().to_markdown(index=False) if _has_tabulate() else rep.table().to_string(index=False),
        "",
        "![fractions](fractions.png)",
        "",
        "## Transition",
        "",
    ]
    if "critical" in t:
        lines.append(
            f"{sym}_c (degenerate overtakes non-degenerate, last up-crossing) = **{_fmt(t['critical'])}**, "
            f"95 % interval [{_fmt(t['lower'])}, {_fmt(t['upper'])}] "
            f"({100 * t['fraction_crossing']:.0f}% of bootstrap replicates cross)."
        )
    else:
        lines.append(
            f"The annihilation phase is last present (share ≥ {t['tolerance']:g}) at "
            f"{sym} = **{_fmt(t['last_present'], 2)}** and absent from "
            f"{sym} = **{_fmt(t['first_absent'], 2)}** on; bootstrap range of the last present value: "
            f"[{_fmt(t['last_present_interval'][0], 2)}, {_fmt(t['last_present_interval'][1], 2)}]."
        )
        o = t["overtaking"]
        lines.append(
            "Overtaking of non-annihilation by annihilation: "
            f"{'none on this grid' if not math.isfinite(o['critical']) else _fmt(o['critical'])}."
        )
    dropped = rep.trials[~rep.trials.kept]
    lines += ["", f"## Trial filter: {len(dropped)} of {len(rep.trials)} trials dropped", ""]
    if len(dropped):
        lines.append(
            (dropped.to_markdown(index=False) if _has_tabulate() else dropped.to_string(index=False))
        )
    lines += [
        "",
        "## Accuracy within each phase",
        "",
        "![min loss](min_loss.png)",
        "",
        "## Effective weights",
        "",
        "![effective weights](effective_weights.png)",
        "",
        "![raw vs effective](raw_vs_effective.png)",
        "",
    ]
    if rep.coarse:
        c = rep.coarse
        lines += [
            "## Unsupervised coarse-graining (t-SNE + HDBSCAN) against the hand-drawn phases",
            "",
            f"{c['samples']} kept draws pooled over all values; {c['n_clusters']} clusters; "
            f"adjusted Rand index {c['ari']:.3f} "
            f"over all draws, {_fmt(c['ari_named'])} over the draws inside a named phase.",
            "",
            "![embedding](embedding.png)",
            "",
        ]
    if rep.llc is not None:
        df = rep.llc[["llc", "llc_se", "loss_star", "notes"]].to_dataframe().reset_index()
        lines += [
            f"## λ̂ per phase ({rep.llc.attrs['sampler']}, nβ = n/log n = {rep.llc.attrs['nbeta']:.1f})",
            "",
            df.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else df.to_string(index=False),
            "",
        ]
    lines += [f"Settings: `{json.dumps(st.to_dict())}`", ""]
    return "\n".join(lines)
