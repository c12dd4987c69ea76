"""The ReLU phase-transition report of a truth sweep: phase fractions, critical value, accuracy per
phase, effective-weight pictures, the unsupervised coarse-graining against the hand-drawn phases, and
λ̂ per phase when given.  Everything is written atomically under ``out/``:

``labels.nc``, ``fractions.nc``, ``fractions.csv``, ``trials.csv`` (z-scores and the filter's verdict
for every trial), ``fractions.png``, ``min_loss.png``, ``effective_weights.png``,
``raw_vs_effective.png``, ``embedding.png``, ``llc.csv`` (when λ̂ was estimated),
``fractions_nearest.csv`` (phases by the nearest critical configuration), ``epsilon.csv`` (shares
against ε), ``configurations.csv`` (each value's critical configurations and their population loss),
``smc_mass.csv`` (when SMC ran) and ``report.md``, whose sections compare the published value, ours
under the protocol the sweep used, and the posterior mass.

**Published values** (:data:`PUBLISHED`, DSLT 4 and Carroll 2021): PT1 θ_c ≈ 1.26 with the degenerate
phase dominating at π/2; shares of all validated samples read off the published animation at ε = 0.3
(non-degenerate / degenerate / neither): θ = 1.00: .94 / 0 / .07; 1.26: .24 / .23 / .54;
π/2: .02 / .71 / .27 (as quoted in the issue).  PT2: the non-annihilation phase is preferred at ϑ = 1
and the annihilation phase disappears between ϑ = 2.0 and 2.25.
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
from ..theory.relu_critical import critical_configurations, pt1_critical_estimate
from .relu_phases import (
    critical_value,
    epsilon_dependence,
    mass_as_fractions,
    phase_fractions,
    trial_draws,
    truth_sweep_labels,
    vanishing_value,
)

__all__ = ["ReluReport", "relu_report", "transition_summary", "coarse_grain_truth_sweep", "PUBLISHED"]

PHASES_PT2 = ("non-annihilation", "annihilation")

#: the published results (module docstring): critical values and shares per phase at ε = 0.3 (PT1)
PUBLISHED = {
    "pt1": {
        "critical": 1.26,
        "shares": {
            1.0: {"non-degenerate": 0.94, "degenerate": 0.0, "neither": 0.07},
            1.26: {"non-degenerate": 0.24, "degenerate": 0.23, "neither": 0.54},
            math.pi / 2: {"non-degenerate": 0.02, "degenerate": 0.71, "neither": 0.27},
        },
    },
    "pt2": {"vanishes": (2.0, 2.25)},
}

_SYMBOL = {"theta": "θ", "vartheta": "ϑ"}


@dataclass
class ReluReport:
    labels: xr.Dataset
    fractions: xr.Dataset
    transition: dict
    trials: pd.DataFrame
    coarse: dict = field(default_factory=dict)
    llc: xr.Dataset | None = None
    nearest: xr.Dataset | None = None
    nearest_labels: xr.Dataset | None = None
    nearest_transition: dict = field(default_factory=dict)
    epsilons: xr.Dataset | None = None
    configurations: pd.DataFrame | None = None
    mass: xr.Dataset | None = None
    protocol: str = "tms-bayes"

    def table(self) -> pd.DataFrame:
        """Phase fractions with intervals, one row per value."""
        table = _fraction_rows(self.fractions)
        table.insert(1, "kept trials", self.fractions.kept_trials.values)
        return table

    def mass_table(self) -> pd.DataFrame:
        """SMC posterior mass and the chains' shares on the same datasets, one row per (classifier,
        value, phase)."""
        if self.mass is None:
            return pd.DataFrame()
        rows = []
        m = self.mass
        for k in m.classifier.values:
            for v in m.value.values:
                for p in m.phase.values:
                    x = m.sel(classifier=k, value=v, phase=p)
                    row = {
                        "classifier": str(k),
                        "value": round(float(v), 4),
                        "phase": str(p),
                        "SMC mass": f"{float(x.mass):.3f} [{float(x.lower):.2f}, {float(x.upper):.2f}]",
                        "SMC repeat SD": round(float(x.rep_sd), 3),
                    }
                    if "mcmc_share" in m:
                        row["chains, same datasets"] = (
                            f"{float(x.mcmc_share):.3f} "
                            f"[{float(x.mcmc_lower):.2f}, {float(x.mcmc_upper):.2f}]"
                        )
                        row["SMC − chains (paired)"] = (
                            f"{float(x.difference):+.3f} ± {float(x.difference_half_width):.3f}"
                        )
                        row["no difference detected"] = bool(x.agree)
                        row["chain phase changes (min over datasets)"] = int(
                            m.mcmc_switches.sel(classifier=k, value=v).min()
                        )
                    rows.append(row)
        return pd.DataFrame(rows)


def configuration_table(experiment: str, values, truths) -> pd.DataFrame:
    """Each value's critical configurations (:mod:`tms_bayes.theory.relu_critical`): population loss,
    effective weights, whether it exists."""
    rows = []
    for v, truth in zip(values, truths):
        for name, c in critical_configurations(experiment, truth).items():
            rows.append(
                {
                    "value": float(v),
                    "phase": name,
                    "population_loss": c.loss,
                    "effective_w": json.dumps(np.round(c.effective, 4).tolist()),
                    "exists": c.exists,
                    "note": c.note,
                }
            )
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
    sample_filter: bool = False,
    margin: float = 0.1,
    radius: float = 1.0,
    mass: xr.Dataset | None = None,
    protocol: str = "tms-bayes",
) -> ReluReport:
    """Analyse a finished truth sweep and write the report files (module docstring) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = truth_sweep_labels(sweep, epsilon=epsilon, z_max=z_max, sample_filter=sample_filter)
    frac = phase_fractions(labels, seed=seed)
    trans = transition_summary(frac)
    trials = trial_table(labels)
    rep = ReluReport(labels, frac, trans, trials, llc=llc, mass=mass, protocol=protocol)
    near_labels = truth_sweep_labels(
        sweep, z_max=z_max, sample_filter=sample_filter, classifier="nearest", margin=margin, radius=radius
    )
    rep.nearest_labels = near_labels
    rep.nearest = phase_fractions(near_labels, seed=seed)
    rep.nearest_transition = transition_summary(rep.nearest)
    rep.epsilons = epsilon_dependence(sweep, z_max=z_max, sample_filter=sample_filter)
    truths = []
    for i in sweep.finished():
        a = sweep.load(i).posterior.attrs
        truths.append(
            (*(np.array(json.loads(a[f"truth_{k}"])) for k in ("w", "b", "q")), float(a["truth_c"]))
        )
    rep.configurations = configuration_table(sweep.settings.experiment, labels.value.values, truths)
    write_netcdf(out / "labels.nc", labels)
    write_netcdf(out / "fractions.nc", frac.drop_vars("bootstrap"))
    write_text(
        out / "fractions.csv",
        frac[["share", "lower", "upper", "min_L_n", "mean_L_n"]]
        .to_dataframe()
        .reset_index()
        .to_csv(index=False),
    )
    write_text(
        out / "fractions_nearest.csv",
        rep.nearest[["share", "lower", "upper"]].to_dataframe().reset_index().to_csv(index=False),
    )
    write_text(out / "epsilon.csv", rep.epsilons.share.to_dataframe().reset_index().to_csv(index=False))
    write_text(out / "configurations.csv", rep.configurations.to_csv(index=False))
    if mass is not None:
        write_text(out / "smc_mass.csv", rep.mass_table().to_csv(index=False))
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


def _table(df: pd.DataFrame, **kw) -> str:
    return df.to_markdown(index=False, **kw) if _has_tabulate() else df.to_string(index=False)


def _share_at(frac: xr.Dataset, value: float, phase: str) -> str:
    j = int(np.argmin(np.abs(frac.value.values - value)))
    if abs(frac.value.values[j] - value) > 1e-6:
        return "not on the grid"
    x = frac.isel(value=j).sel(phase=phase)
    return f"{float(x.share):.2f} [{float(x.lower):.2f}, {float(x.upper):.2f}]"


def _mass_at(mass, classifier: str, value: float, phase: str) -> str:
    if mass is None:
        return "not run"
    j = np.flatnonzero(np.abs(mass.value.values - value) < 1e-6)
    if not len(j):
        return "not run here"
    x = mass.sel(classifier=classifier).isel(value=int(j[0])).sel(phase=phase)
    return f"{float(x.mass):.2f} [{float(x.lower):.2f}, {float(x.upper):.2f}]"


def _transition_text(t: dict) -> str:
    if "critical" in t:
        return f"{_fmt(t['critical'])} [{_fmt(t['lower'])}, {_fmt(t['upper'])}]"
    return f"last present {_fmt(t['last_present'], 2)}, absent from {_fmt(t['first_absent'], 2)}"


def _crossed(rep: ReluReport, phase: str):
    """(value, share of the ε-classifier's 'neither' draws of kept trials that the nearest-configuration
    classifier puts in ``phase``) for each value."""
    eps, near, kept = rep.labels.label.values, rep.nearest_labels.label.values, rep.labels.kept.values
    out = []
    for j, v in enumerate(rep.labels.value.values):
        neither = (eps[j] == "neither") & kept[j][:, None]
        out.append((v, float((near[j][neither] == phase).mean()) if neither.any() else math.nan))
    return out


def _smc_transition(mass, classifier: str, exp: str) -> str:
    """The transition measured on the SMC mass at its values (interpolated between them)."""
    if mass is None or mass.sizes["value"] < 2:
        return "needs ≥ 2 SMC values"
    frac = mass_as_fractions(mass.sel(classifier=classifier))
    frac.attrs["experiment"] = exp
    return _transition_text(transition_summary(frac))


def _comparison(rep: ReluReport, sym: str) -> list[str]:
    """The sections comparing the published value, ours under the sweep's protocol, the nearest-
    configuration phases and the SMC posterior mass, with the geometric reasons measured."""
    exp = rep.fractions.attrs["experiment"]
    eps = rep.labels.attrs["epsilon"]
    pub = PUBLISHED[exp]
    lines = [
        "",
        f"## Published value, ours ({rep.protocol} protocol), posterior mass",
        "",
        "Chains: shares of all draws of the kept trials (the published figures' denominator: validated "
        "samples, 'neither' included). SMC: posterior mass on the first trials' datasets "
        "(mean over datasets, 95 % bootstrap interval over datasets).",
        "",
    ]
    rows = []
    if exp == "pt1":
        rows.append(
            {
                "quantity": f"{sym}_c (degenerate overtakes non-degenerate)",
                "published": f"≈ {pub['critical']}",
                f"chains, ε = {eps:g}": _transition_text(rep.transition),
                "chains, nearest configuration": _transition_text(rep.nearest_transition),
                f"SMC, ε = {eps:g}": _smc_transition(rep.mass, "epsilon", exp),
                "SMC, nearest": _smc_transition(rep.mass, "nearest", exp),
            }
        )
        for v, shares in pub["shares"].items():
            for p in ("degenerate", "non-degenerate"):
                rows.append(
                    {
                        "quantity": f"share {p} at {sym} = {v:.4g}",
                        "published": f"{shares[p]:.2f}",
                        f"chains, ε = {eps:g}": _share_at(rep.fractions, v, p),
                        "chains, nearest configuration": _share_at(rep.nearest, v, p),
                        f"SMC, ε = {eps:g}": _mass_at(rep.mass, "epsilon", v, p),
                        "SMC, nearest": _mass_at(rep.mass, "nearest", v, p),
                    }
                )
    else:
        lo, hi = pub["vanishes"]
        rows.append(
            {
                "quantity": f"{sym} where the annihilation phase vanishes",
                "published": f"between {lo:g} and {hi:g}",
                f"chains, ε = {eps:g}": _transition_text(rep.transition),
                "chains, nearest configuration": _transition_text(rep.nearest_transition),
                f"SMC, ε = {eps:g}": _smc_transition(rep.mass, "epsilon", exp),
                "SMC, nearest": _smc_transition(rep.mass, "nearest", exp),
            }
        )
        rows.append(
            {
                "quantity": f"share non-annihilation / annihilation at {sym} = 1",
                "published": "non-annihilation preferred",
                f"chains, ε = {eps:g}": " / ".join(_share_at(rep.fractions, 1.0, p) for p in PHASES_PT2),
                "chains, nearest configuration": " / ".join(
                    _share_at(rep.nearest, 1.0, p) for p in PHASES_PT2
                ),
                f"SMC, ε = {eps:g}": " / ".join(_mass_at(rep.mass, "epsilon", 1.0, p) for p in PHASES_PT2),
                "SMC, nearest": " / ".join(_mass_at(rep.mass, "nearest", 1.0, p) for p in PHASES_PT2),
            }
        )
        values = rep.mass.value.values if rep.mass is not None else []
        for v in values:
            rows.append(
                {
                    "quantity": f"share annihilation at {sym} = {v:.4g}",
                    "published": "0" if v >= hi else "> 0",
                    f"chains, ε = {eps:g}": _share_at(rep.fractions, v, "annihilation"),
                    "chains, nearest configuration": _share_at(rep.nearest, v, "annihilation"),
                    f"SMC, ε = {eps:g}": _mass_at(rep.mass, "epsilon", v, "annihilation"),
                    "SMC, nearest": _mass_at(rep.mass, "nearest", v, "annihilation"),
                }
            )
    lines += [_table(pd.DataFrame(rows)), ""]
    lines += ["### Why they differ: where the critical configurations are", ""]
    cfg = rep.configurations
    if exp == "pt1":
        deg = cfg[cfg.phase == "degenerate"]
        norms = [float(np.max(np.linalg.norm(np.array(json.loads(e)), axis=1))) for e in deg.effective_w]
        inside = [float(v) for v, r in zip(deg.value, norms) if abs(r - 2.0) < eps]
        est = pt1_critical_estimate(deg.population_loss.values, deg.value.values, int(rep.labels.attrs["n"]))
        lines += [
            "The degenerate configuration (best one-node network, the other node dead) has ‖ŵ‖ = "
            + ", ".join(f"{r:.2f} at {sym} = {float(v):.3g}" for v, r in zip(deg.value, norms))
            + f". The published annulus (|‖ŵ‖ − 2| < ε = {eps:g}) contains it only at {sym} ∈ "
            + (f"[{min(inside):.3g}, {max(inside):.3g}]" if inside else "∅")
            + " on this grid. Measured: of the draws the annuli leave in 'neither' (kept trials), the "
            "share nearest to the degenerate configuration is "
            + ", ".join(f"{x:.2f} at {sym} = {float(v):.3g}" for v, x in _crossed(rep, "degenerate"))
            + ". The nearest-configuration phases follow the configuration as it moves.",
            "",
            "Its population loss L_deg(θ) = "
            + ", ".join(f"{float(x):.4f}" for x in deg.population_loss)
            + f"; the free-energy estimate (nβ·L/2 against Δλ log nβ, Δλ = 2) puts {sym}_c at "
            + {
                -math.inf: "below the grid (degenerate ahead everywhere)",
                math.inf: "above the grid (non-degenerate ahead everywhere)",
            }.get(est, _fmt(est))
            + " — a heuristic: Δλ is a difference of two upper bounds (theory.relu_critical).",
            "",
        ]
    else:
        ann = cfg[cfg.phase == "annihilation"]
        lines += [
            "The annihilation configuration (the local minimum of the population loss reached from the "
            "orientation-reversed network) at each value: "
            + "; ".join(f"{sym} = {float(v):.3g}: {note}" for v, note in zip(ann.value, ann.note))
            + f". The published ball (radius ε = {eps:g}) is centred on the reversed weights with the "
            f"{sym}-node scaled; once the minimum is farther than ε from that centre the ball no longer "
            "holds it. Measured: of the draws the balls leave in 'neither' (kept trials), the share "
            "nearest to the annihilation configuration is "
            + ", ".join(f"{x:.2f} at {sym} = {float(v):.3g}" for v, x in _crossed(rep, "annihilation"))
            + ".",
            "",
        ]
    lines += [_table(cfg[["value", "phase", "population_loss", "effective_w", "exists"]], floatfmt=".4g"), ""]
    tab = (
        rep.epsilons.share.to_dataframe()
        .reset_index()
        .pivot_table(index=["value", "phase"], columns="epsilon", values="share")
    )
    tab.columns = [f"ε = {c:g}" for c in tab.columns]
    lines += [
        "## Shares against ε (kept trials)",
        "",
        _table(tab.reset_index().round(3)),
        "",
        f"## Phases by the nearest critical configuration (margin {rep.nearest.attrs['margin']:g}, "
        f"radius {rep.nearest.attrs['radius']:g})",
        "",
        _table(_fraction_rows(rep.nearest)),
        "",
    ]
    if rep.mass is not None:
        m = rep.mass.attrs
        lines += [
            f"## Posterior mass by SMC ({m['datasets']} datasets × {m['repeats']} runs, {m['particles']} "
            f"particles, {m['mcmc_steps']} HMC moves per stage; {m['smc_wall_time_s']:.0f} s of SMC in all)",
            "",
            _table(rep.mass_table()),
            "",
        ]
    return lines


def _fraction_rows(f: xr.Dataset) -> pd.DataFrame:
    rows = {"value": f.value.values}
    for p in f.phase.values:
        s, lo, hi = (f[k].sel(phase=p).values for k in ("share", "lower", "upper"))
        rows[str(p)] = [f"{a:.3f} [{b:.2f}, {c:.2f}]" for a, b, c in zip(s, lo, hi)]
    return pd.DataFrame(rows)


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
    lines += _comparison(rep, sym)
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
