"""Phases of the two-layer ReLU experiments (SPEC 5): effective weights, hand-drawn phases, the trial
filter, phase fractions against the truth parameter and the critical value.

**Effective weights.**  ReLU is positively homogeneous, so (w_a, b_a, q_a) → (α w_a, α b_a, q_a/α),
α > 0, leaves f unchanged; ŵ_a = |q_a| w_a is invariant.  Node permutations act on ŵ by permuting
rows; the phases below are unions over permutations, hence permutation-invariant.

**Phase Transition 1** (d = 2, annuli of half-width ε, default 0.3):

- ``degenerate``: one ‖ŵ_a‖ < ε and the other node within ε of 2 (|‖ŵ‖ − 2| < ε);
- ``non-degenerate``: both |‖ŵ_a‖ − 1| < ε;
- ``neither`` otherwise.

**Phase Transition 2** (d = 3, balls of radius ε, default 0.25) around the true effective weights
ŵ⁰_a = |q⁰_a| w⁰_a (so the ϑ-node's centre is scaled by ϑ):

- ``non-annihilation``: some permutation π has ‖ŵ_{π(a)} − ŵ⁰_a‖ ≤ ε for every a;
- ``annihilation``: some π has ‖ŵ_{π(a)} + ŵ⁰_a‖ ≤ ε for every a (the orientation-reversed
  network, exactly true at ϑ = 1 because Σ_a w⁰_a = 0);
- ``neither`` otherwise.

**Nearest critical configuration** (``classifier="nearest"``): the ε-regions above are centred on
the θ = π/2 (PT1) and ϑ = 1 (PT2) geometry, but the critical configurations they stand for move with
the truth (:mod:`tms_bayes.theory.relu_critical`: the best one-node network at θ = 1 has ‖ŵ‖ = 1.1,
not 2; the annihilation minimum leaves the ε = 0.25 ball around the scaled reversed weights near
ϑ ≈ 1.4).  This classifier computes each phase's configuration at the draw's own truth and labels a
draw with the phase of the nearest one, D(ŵ, ŵ_α) = min_π max_a ‖ŵ_π(a) − ŵ_α,a‖ (node-wise: PT2's
ε-ball phase is exactly D ≤ ε; PT1's annuli look at norms only), unless it is within ``margin`` of
being as close to another (then ``neither``: between phases) or farther than ``radius`` from all of
them.  The default radius 1 is the distance between the two PT1 configurations at θ = 1 (D = 1.0): a
labelled draw is no farther from its configuration than the configurations are from each other.  The
orientation reversal enters PT2 as its own configuration (the annihilation phase); PT1 has no reversed
configuration (Σ_a q_a w_a = (0, 2 sin θ) ≠ 0: the reversed network is not a critical point).  A
configuration that has merged with the truth is not a phase.

**Sample filter** (the published protocol, d = 2 only): draws in which *both* nodes have
w_{a,2}·q_a ≤ −1 are dropped (both effective nodes pointing down with a large output weight: the
published code's validation of samples).  Dropped draws are excluded from the shares' denominators
and counted in ``valid``.

**Trial filter** (SPEC 5, Carroll): at each value, a trial's mean L_n is turned into a z-score
across the trials of that value (population standard deviation) and trials with |z| ≥ ``z_max``
(default 1.5) are dropped as unconverged.  With T trials |z| ≤ √(T − 1), so T ≥ 4 trials are
needed for the 1.5 threshold to be able to drop anything; on well-behaved (Gaussian) trials it still
drops about P(|Z| ≥ 1.5) ≈ 13 % of them, so a dropped trial is not proof of non-convergence.
Dropped trials are returned and reported, never silently removed.

**Phase fractions** at each value pool the draws of the kept trials; intervals are percentile
bootstrap intervals over kept trials (the independent units: a trial's draws come from one chain, whose
phase changes are correlated in time, so draws are not independent of each other).

**Critical value.**  PT1: the value at which share(degenerate) − share(non-degenerate) changes sign
from negative to non-negative for the last time, interpolated linearly, with a bootstrap interval
(:func:`tms_bayes.analysis.occupancy.last_upcrossing`).  PT2: the annihilation phase "vanishes" at the
first value from which its share stays below ``tolerance`` (default 0.01) for the rest of the grid;
the report gives the bracket (last value with share ≥ tolerance, first value after it) and the same
bracket over bootstrap replicates.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import xarray as xr

from .. import __version__, _validate
from ..theory.relu_critical import configuration_distance, critical_configurations
from .occupancy import bootstrap_shares, crossing_with_interval
from .phases import effective_weights

__all__ = [
    "effective_weights",
    "pt1_phase",
    "pt2_phase",
    "classify_relu",
    "configurations",
    "nearest_phase",
    "published_sample_filter",
    "trial_filter",
    "trial_draws",
    "truth_sweep_labels",
    "relu_sweep_labels",
    "phase_fractions",
    "phase_mass",
    "mass_as_fractions",
    "epsilon_dependence",
    "critical_value",
    "vanishing_value",
    "PHASES",
]

NEITHER = "neither"
PHASES = {
    "pt1": ("degenerate", "non-degenerate", NEITHER),
    "pt2": ("non-annihilation", "annihilation", NEITHER),
}
DEFAULT_EPSILON = {"pt1": 0.3, "pt2": 0.25}


def pt1_phase(w, q, *, epsilon: float = 0.3) -> np.ndarray:
    """Phase Transition 1 labels (module docstring) of samples w (..., 2, 2), q (..., 2)."""
    epsilon = _validate.positive("epsilon", epsilon)
    eff = effective_weights(w, q)
    if eff.shape[-2] != 2:
        raise ValueError(f"Phase Transition 1 has d = 2 nodes; got {eff.shape[-2]}")
    r = np.linalg.norm(eff, axis=-1)  # (..., 2)
    small, big = np.min(r, axis=-1), np.max(r, axis=-1)
    degenerate = (small < epsilon) & (np.abs(big - 2.0) < epsilon)
    nondegenerate = np.all(np.abs(r - 1.0) < epsilon, axis=-1)
    return np.where(degenerate, PHASES["pt1"][0], np.where(nondegenerate, PHASES["pt1"][1], NEITHER))


def pt2_phase(w, q, truth_w, truth_q, *, epsilon: float = 0.25) -> np.ndarray:
    """Phase Transition 2 labels (module docstring) of samples w (..., d, 2), q (..., d) against the
    truth's weights (d, 2) and output weights (d,)."""
    epsilon = _validate.positive("epsilon", epsilon)
    eff = effective_weights(w, q)
    centre = effective_weights(truth_w, truth_q)
    d = centre.shape[0]
    if eff.shape[-2:] != centre.shape:
        raise ValueError(f"samples have {eff.shape[-2]} nodes, the truth has {d}")
    perms = np.array(list(itertools.permutations(range(d))))  # (d!, d)
    moved = eff[..., perms, :]  # (..., d!, d, 2)

    def inside(target):
        dist = np.linalg.norm(moved - target, axis=-1)  # (..., d!, d)
        return np.any(np.all(dist <= epsilon, axis=-1), axis=-1)

    names = PHASES["pt2"]
    return np.where(inside(centre), names[0], np.where(inside(-centre), names[1], NEITHER))


def classify_relu(experiment: str, w, q, *, truth=None, epsilon: float | None = None) -> np.ndarray:
    """Labels for ``experiment`` ("pt1" or "pt2"; pt2 needs ``truth`` = (w⁰, q⁰))."""
    _validate.choice("experiment", experiment, PHASES)
    eps = DEFAULT_EPSILON[experiment] if epsilon is None else epsilon
    if experiment == "pt1":
        return pt1_phase(w, q, epsilon=eps)
    if truth is None:
        raise ValueError("Phase Transition 2 phases are balls around the truth: pass truth=(w0, q0)")
    return pt2_phase(w, q, truth[0], truth[1], epsilon=eps)


def configurations(experiment: str, truth) -> dict:
    """{phase: effective weights (d, 2)} of the critical configurations at ``truth`` = (w⁰, b⁰, q⁰, c⁰)
    (:mod:`tms_bayes.theory.relu_critical`; a configuration merged with the truth is left out)."""
    _validate.choice("experiment", experiment, PHASES)
    return {k: c.effective for k, c in critical_configurations(experiment, truth).items() if c.exists}


def nearest_phase(eff, references: dict, *, margin: float = 0.1, radius: float = 1.0) -> np.ndarray:
    """Labels of effective weights ``eff`` (..., d, 2) by the nearest configuration of ``references``
    ({phase: (d, 2)}): ``neither`` when the second nearest is less than ``margin`` farther or the
    nearest is farther than ``radius`` (module docstring)."""
    margin = _validate.positive("margin", margin, strict=False)
    radius = _validate.positive("radius", radius)
    names = list(references)
    if not names:
        raise ValueError("references must name at least one configuration")
    dist = np.stack([configuration_distance(eff, references[k]) for k in names], axis=-1)
    order = np.sort(dist, axis=-1)
    gap = order[..., 1] - order[..., 0] if len(names) > 1 else np.full(order.shape[:-1], np.inf)
    label = np.asarray(names, dtype=object)[np.argmin(dist, axis=-1)]
    ok = (gap >= margin) & (order[..., 0] <= radius)
    return np.where(ok, label, NEITHER).astype(str)


def published_sample_filter(w, q) -> np.ndarray:
    """Keep-mask of the published protocol's sample filter (module docstring): for d = 2 a draw is
    dropped when w_{a,2}·q_a ≤ −1 for both nodes; other d keep every draw.  w (..., d, 2), q (..., d)."""
    w, q = np.asarray(w, dtype=float), np.asarray(q, dtype=float)
    if w.shape[-2] != 2:
        return np.ones(w.shape[:-2], dtype=bool)
    return ~np.all(w[..., 1] * q <= -1.0, axis=-1)


def trial_filter(mean_loss, *, z_max: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """(keep, z) for trials' mean L_n (..., trial): z-scores across the last axis with the population
    standard deviation; keep = |z| < ``z_max`` (all kept when the trials agree exactly)."""
    z_max = _validate.positive("z_max", z_max)
    m = _validate.finite_array("mean_loss", mean_loss)
    sd = m.std(axis=-1, keepdims=True)
    z = np.divide(m - m.mean(axis=-1, keepdims=True), sd, out=np.zeros_like(m), where=sd > 0)
    return np.abs(z) < z_max, z


def trial_draws(posterior, name: str) -> np.ndarray:
    """Variable ``name`` of a truth-sweep posterior as an array (trial, draw, ...).  Files written before
    the ``trial`` dim kept one trial per chain; they are read the same way."""
    x = posterior[name]
    if "trial" in x.dims:
        return x.isel(chain=0).transpose("trial", "draw", ...).values
    return x.values


def truth_sweep_labels(
    sweep,
    *,
    epsilon: float | None = None,
    z_max: float = 1.5,
    classifier: str = "epsilon",
    sample_filter: bool = False,
    margin: float = 0.1,
    radius: float = 1.0,
) -> xr.Dataset:
    """Phase label and L_n of every draw of a finished truth sweep, dims (value, trial, draw), with the
    trial filter's z-scores and verdicts (value, trial), the effective weights (value, trial, draw,
    node, input) and ``valid`` (value, trial, draw: kept by the sample filter, all True without it).
    ``classifier``: "epsilon" (the published ε-regions) or "nearest" (nearest critical configuration,
    with ``margin`` and ``radius``; module docstring)."""
    st = sweep.settings
    idx = sweep.finished()
    if not idx:
        raise ValueError(f"{sweep.out} has no finished values to analyse")
    _validate.choice("classifier", classifier, ("epsilon", "nearest"))
    eps = DEFAULT_EPSILON[st.experiment] if epsilon is None else _validate.positive("epsilon", epsilon)
    labels, loss, eff, valid = [], [], [], []
    for i in idx:
        post = sweep.load(i).posterior
        w, q = trial_draws(post, "w"), trial_draws(post, "q")
        truth = tuple(np.array(json.loads(post.attrs[f"truth_{k}"])) for k in ("w", "b", "q"))
        e = effective_weights(w, q)
        if classifier == "epsilon":
            labels.append(classify_relu(st.experiment, w, q, truth=(truth[0], truth[2]), epsilon=eps))
        else:
            refs = configurations(st.experiment, (*truth, float(post.attrs["truth_c"])))
            labels.append(nearest_phase(e, refs, margin=margin, radius=radius))
        loss.append(trial_draws(post, "L_n"))
        eff.append(e)
        valid.append(published_sample_filter(w, q) if sample_filter else np.ones(w.shape[:2], dtype=bool))
    loss = np.stack(loss)
    keep, z = trial_filter(loss.mean(axis=-1), z_max=z_max)
    values = np.array(st.values)[idx]
    return xr.Dataset(
        {
            "label": (("value", "trial", "draw"), np.stack(labels).astype(str)),
            "L_n": (("value", "trial", "draw"), loss),
            "effective_w": (("value", "trial", "draw", "node", "input"), np.stack(eff)),
            "valid": (("value", "trial", "draw"), np.stack(valid)),
            "mean_L_n": (("value", "trial"), loss.mean(axis=-1)),
            "z": (("value", "trial"), z),
            "kept": (("value", "trial"), keep),
        },
        coords={
            "value": values,
            "trial": np.arange(st.trials),
            "draw": np.arange(st.draws),
            "node": np.arange(st.resolved_d()),
            "input": [0, 1],
        },
        attrs={
            "experiment": st.experiment,
            "parameter": st.parameter,
            "classifier": classifier,
            "epsilon": eps,
            **({"margin": margin, "radius": radius} if classifier == "nearest" else {}),
            "sample_filter": "published" if sample_filter else "none",
            "z_max": z_max,
            "n": st.n,
            "sweep": str(sweep.out),
        },
    )


def relu_sweep_labels(sweep, *, epsilon: float | None = None, progress: bool = False) -> xr.Dataset:
    """Phase label and L_n of every draw of a ReLU sweep over n (``tms-bayes sweep --model relu-pt1``
    or ``relu-pt2``), dims (n, seed, chain, draw): the labels of the truth-sweep experiments (module
    docstring) at the sweep's fixed truth; :func:`tms_bayes.analysis.occupancy.empirical_occupancy`
    turns them into shares against n."""
    from ..models.relu import pt1_truth, pt2_truth
    from .occupancy import label_sweep

    st = sweep.settings
    if not st.model.startswith("relu"):
        raise ValueError(
            f"{sweep.out} is a {st.model!r} sweep; "
            "ReLU phases need a relu-pt1 or relu-pt2 sweep (TMS: occupancy.sweep_labels)"
        )
    experiment = "pt1" if st.model == "relu-pt1" else "pt2"
    if st.resolved_d() != {"pt1": 2, "pt2": 3}[experiment]:
        raise ValueError(
            f"the {experiment} phases are defined for d = {2 if experiment == 'pt1' else 3} nodes; "
            f"this sweep has d = {st.resolved_d()}"
        )
    truth = pt1_truth(st.theta) if experiment == "pt1" else pt2_truth(st.vartheta)
    eps = DEFAULT_EPSILON[experiment] if epsilon is None else _validate.positive("epsilon", epsilon)

    def classify(post):
        return classify_relu(
            experiment, post["w"].values, post["q"].values, truth=(truth.w, truth.q), epsilon=eps
        )

    return label_sweep(
        sweep,
        classify,
        {
            "experiment": experiment,
            "truth": truth.name,
            "epsilon": eps,
            "phases": list(PHASES[experiment]),
            "catch_all": NEITHER,
        },
        progress=progress,
    )


def phase_fractions(
    labels: xr.Dataset, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> xr.Dataset:
    """Share of each phase at each value over kept trials, with bootstrap intervals over trials, the
    per-trial shares, and the minimum and mean L_n within each phase (module docstring).  A trial's
    shares are over its draws that pass the sample filter (``valid``); the value's share is the mean
    over kept trials (trials weighted equally: they are the bootstrap's units — with the filter
    removing nothing every trial has the same number of draws, so this is also the share of all
    pooled draws); a trial with no valid draw is not kept."""
    n_boot = _validate.integer("n_boot", n_boot, minimum=10)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    phases = list(PHASES[labels.attrs["experiment"]])
    lab, Ln, keep = labels["label"].values, labels["L_n"].values, labels["kept"].values
    valid = labels["valid"].values if "valid" in labels else np.ones(lab.shape, dtype=bool)
    kept_by_z = keep
    keep = keep & valid.any(axis=-1)  # a trial the sample filter empties has no shares to give
    counted = np.maximum(valid.sum(axis=-1), 1)
    per_trial = np.stack([((lab == p) & valid).sum(axis=-1) / counted for p in phases], axis=-1)
    share, lo, hi, boot = bootstrap_shares(per_trial, keep, n_boot=n_boot, level=level, seed=seed)
    inside = [(lab == p) & valid & keep[..., None] for p in phases]
    min_loss = np.stack([np.where(m, Ln, np.inf).min(axis=(1, 2)) for m in inside], axis=-1)
    min_loss[~np.isfinite(min_loss)] = np.nan
    with np.errstate(invalid="ignore"):
        mean_loss = np.stack(
            [np.where(m, Ln, 0).sum(axis=(1, 2)) / m.sum(axis=(1, 2)) for m in inside], axis=-1
        )
    return xr.Dataset(
        {
            "share": (("value", "phase"), share, {"long_name": "share of draws of the kept trials"}),
            "lower": (("value", "phase"), lo),
            "upper": (("value", "phase"), hi),
            "share_trial": (("value", "trial", "phase"), per_trial),
            "min_L_n": (
                ("value", "phase"),
                min_loss,
                {"long_name": "minimum L_n over the phase's draws (kept trials)"},
            ),
            "mean_L_n": (("value", "phase"), mean_loss),
            "kept_trials": (("value",), keep.sum(axis=1)),
            "valid_share": (
                ("value",),
                (valid & kept_by_z[..., None]).sum(axis=(1, 2))
                / np.maximum(kept_by_z.sum(axis=1) * lab.shape[-1], 1),
                {"long_name": "share of the trial-filtered draws passing the sample filter"},
            ),
            "bootstrap": (("replicate", "value", "phase"), boot),
        },
        coords={
            "value": labels.value.values,
            "phase": phases,
            "trial": labels.trial.values,
            "replicate": np.arange(n_boot),
        },
        attrs={
            **labels.attrs,
            "interval": f"{level:.0%} percentile bootstrap over kept trials, "
            f"{n_boot} replicates, seed {seed}",
            "tms_bayes_version": __version__,
        },
    )


def phase_mass(
    labels,
    log_weight,
    values,
    phases,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    attrs: dict | None = None,
) -> xr.Dataset:
    """Posterior mass of each phase from weighted SMC particles: ``labels`` and ``log_weight`` (value,
    dataset, rep, particle).  Per run the mass is Σ W_i [label_i = α] (normalised weights); ``mass`` is
    the mean over datasets and repeats; the interval is a percentile bootstrap over datasets (repeats
    averaged within a dataset: datasets are the independent units); ``rep_sd`` is the spread between
    repeats on one dataset (the SMC error), averaged over datasets; ``bootstrap`` holds the replicates
    (for :func:`critical_value` and :func:`vanishing_value` on the mass: :func:`mass_as_fractions`)."""
    lab = np.asarray(labels)
    lw = np.asarray(log_weight, dtype=float)
    if lab.shape != lw.shape or lab.ndim != 4:
        raise ValueError(
            f"labels and log_weight must both be (value, dataset, rep, particle); got {lab.shape}, {lw.shape}"
        )
    W = np.exp(lw - lw.max(axis=-1, keepdims=True))
    W /= W.sum(axis=-1, keepdims=True)
    phases = [str(p) for p in phases]
    per_run = np.stack([(W * (lab == p)).sum(axis=-1) for p in phases], axis=-1)  # (value, dataset, rep, P)
    per_dataset = per_run.mean(axis=2)
    mass, lo, hi, boot = bootstrap_shares(per_dataset, n_boot=n_boot, level=level, seed=seed)
    rep_sd = per_run.std(axis=2, ddof=1).mean(axis=1) if lab.shape[2] > 1 else np.full(mass.shape, np.nan)
    return xr.Dataset(
        {
            "mass": (("value", "phase"), mass, {"long_name": "posterior mass (SMC), mean over datasets"}),
            "lower": (("value", "phase"), lo),
            "upper": (("value", "phase"), hi),
            "rep_sd": (("value", "phase"), rep_sd, {"long_name": "SD between SMC repeats on one dataset"}),
            "mass_run": (("value", "dataset", "rep", "phase"), per_run),
            "bootstrap": (("replicate", "value", "phase"), boot),
        },
        coords={
            "value": np.asarray(values, dtype=float),
            "phase": phases,
            "dataset": np.arange(lab.shape[1]),
            "rep": np.arange(lab.shape[2]),
            "replicate": np.arange(n_boot),
        },
        attrs={
            **(attrs or {}),
            "interval": f"{level:.0%} percentile bootstrap over datasets, {n_boot} replicates, seed {seed}",
            "tms_bayes_version": __version__,
        },
    )


def mass_as_fractions(mass: xr.Dataset) -> xr.Dataset:
    """One classifier's SMC mass (:func:`phase_mass`) in the layout of :func:`phase_fractions` (``share``,
    ``bootstrap``), so that :func:`critical_value` and :func:`vanishing_value` apply to it."""
    return mass[["mass", "lower", "upper", "bootstrap"]].rename(mass="share")


def epsilon_dependence(sweep, epsilons=(0.1, 0.2, 0.3, 0.4, 0.5), *, z_max: float = 1.5, sample_filter=False):
    """Phase shares (kept trials) of a truth sweep against the phase radius ε: a Dataset (epsilon,
    value, phase) of ``share`` — how much of "neither" is the choice of ε."""
    rows = []
    for e in epsilons:
        lab = truth_sweep_labels(sweep, epsilon=e, z_max=z_max, sample_filter=sample_filter)
        rows.append(phase_fractions(lab, n_boot=10).share)
    return xr.concat(rows, dim=xr.DataArray(np.asarray(epsilons, dtype=float), dims="epsilon")).to_dataset(
        name="share"
    )


def critical_value(frac: xr.Dataset, alpha: str, beta: str, *, level: float = 0.95) -> dict:
    """The value where share(β) overtakes share(α) for the last time, with a bootstrap interval."""
    for p in (alpha, beta):
        if p not in frac.phase.values:
            raise ValueError(f"unknown phase {p!r}; phases: {', '.join(map(str, frac.phase.values))}")
    c = crossing_with_interval(
        frac.value.values,
        (frac.share.sel(phase=beta) - frac.share.sel(phase=alpha)).values,
        (frac.bootstrap.sel(phase=beta) - frac.bootstrap.sel(phase=alpha)).values,
        level=level,
    )
    return {
        "from": alpha,
        "to": beta,
        "critical": c["point"],
        "lower": c["lower"],
        "upper": c["upper"],
        "fraction_crossing": c["fraction_crossing"],
    }


def _vanish_bracket(x: np.ndarray, share: np.ndarray, tolerance: float) -> tuple[float, float]:
    present = np.flatnonzero(np.nan_to_num(share, nan=0.0) >= tolerance)
    if present.size == 0:
        return (math.nan, float(x[0]))  # never present on this grid
    last = present[-1]
    return (float(x[last]), float(x[last + 1]) if last + 1 < len(x) else math.nan)


def vanishing_value(frac: xr.Dataset, phase: str, *, tolerance: float = 0.01, level: float = 0.95) -> dict:
    """Where ``phase`` disappears: (last value with share ≥ ``tolerance``, next grid value), and the
    bootstrap range of both ends (module docstring).  NaN upper end: still present at the last value."""
    tolerance = _validate.positive("tolerance", tolerance)
    if phase not in frac.phase.values:
        raise ValueError(f"unknown phase {phase!r}; phases: {', '.join(map(str, frac.phase.values))}")
    x = frac.value.values.astype(float)
    last, first_gone = _vanish_bracket(x, frac.share.sel(phase=phase).values, tolerance)
    reps = np.array([_vanish_bracket(x, r, tolerance) for r in frac.bootstrap.sel(phase=phase).values])
    q = [(1 - level) / 2, (1 + level) / 2]
    lo_last = np.nanquantile(reps[:, 0], q) if np.isfinite(reps[:, 0]).any() else (math.nan, math.nan)
    return {
        "phase": phase,
        "last_present": last,
        "first_absent": first_gone,
        "tolerance": tolerance,
        "last_present_interval": (float(lo_last[0]), float(lo_last[1])),
    }
