"""Empirical phase occupancy from a sweep, beside the free-energy prediction (SPEC 2).

**What the estimator measures.**  Every posterior draw of every chain is labelled by the exact
classifier, and the share of a phase at n is the fraction of all draws (pooled over seeds and
chains) carrying its label.  NUTS chains do cross between the 5, 5+ and 6 phases, but slowly
(hundreds of draws at n ≈ 600; four chains started at the 5-gon: three ended in the 6-gon, one went
6 → 5+ → 5), so this is an MCMC estimate of posterior mass that may not have converged: its value
depends on run length and starting points.  Posterior mass by data-tempered SMC
(:mod:`tms_bayes.inference.smc`) is the reference estimator.

**Uncertainty.**  The independent units are chains.  Intervals are percentile bootstrap intervals
(default 95 %, 1000 replicates, fixed seed) from resampling chains with replacement, independently at
each n; the per-seed shares are kept so that the spread between datasets is visible.

**Crossover α → β.**  The n at which share(β) − share(α) changes sign from negative to positive for
the last time on the grid, by linear interpolation; its interval is the bootstrap percentile
interval over replicates in which the curves cross (the fraction that cross is reported).
The theoretical crossover is :func:`tms_bayes.theory.crossover`; its interval is the range of n in
which |F_α − F_β| ≤ 1, i.e. where the O(1) terms that the expansion drops could move it.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .. import __version__, _validate
from ..theory import crossover as theory_crossover
from ..theory import phase_free_energies
from .phases import UNCLASSIFIED, FunctionalRule, Rule, classify_tms

__all__ = [
    "sweep_labels",
    "label_sweep",
    "bootstrap_shares",
    "on_phases",
    "OTHER",
    "empirical_occupancy",
    "last_upcrossing",
    "empirical_crossover",
    "crossing_with_interval",
    "theory_crossover_interval",
]


def label_sweep(sweep, classify, attrs: dict, *, progress: bool = False) -> xr.Dataset:
    """Phase label and L_n of every draw of a finished sweep over n, dims (n, seed, chain, draw):
    ``classify(posterior) -> labels (chain, draw)`` is applied to each run; ``attrs`` describe the rule
    (``phases``: the phase names in display order, ``catch_all``: the label of draws in no phase)."""
    st = sweep.settings
    jobs = sweep.finished()
    if not jobs:
        raise ValueError(f"{sweep.out} has no finished runs to analyse")
    ns = sorted({n for n, _ in jobs})
    seeds = sorted({s for _, s in jobs})
    missing = [(n, s) for n in ns for s in seeds if (n, s) not in set(jobs)]
    if missing:
        raise ValueError(
            f"{sweep.out} is incomplete ({len(missing)} runs missing, "
            f"e.g. n={missing[0][0]} seed={missing[0][1]}); finish it with the same sweep command"
        )
    labels = np.empty((len(ns), len(seeds), st.chains, st.draws), dtype=object)
    loss = np.empty(labels.shape)
    from tqdm.auto import tqdm

    for n, s in tqdm(jobs, desc="classify", unit="run", disable=not progress, leave=False):
        post = sweep.load(n, s).posterior
        i, j = ns.index(n), seeds.index(s)
        labels[i, j] = classify(post)
        loss[i, j] = post["L_n"].values
    return xr.Dataset(
        {
            "label": (("n", "seed", "chain", "draw"), labels.astype(str)),
            "L_n": (("n", "seed", "chain", "draw"), loss),
        },
        coords={"n": ns, "seed": seeds, "chain": np.arange(st.chains), "draw": np.arange(st.draws)},
        attrs={"sweep": str(sweep.out), "model": st.model, **attrs},
    )


def sweep_labels(sweep, thresholds: Rule | None = None, *, progress: bool = False) -> xr.Dataset:
    """Exact k-gon labels and L_n of every draw of a TMS sweep: dims (n, seed, chain, draw)."""
    st = sweep.settings
    if st.model != "tms":
        raise ValueError(
            f"k-gon occupancy needs a TMS sweep; {sweep.out} is a {st.model!r} sweep "
            "(ReLU sweeps: tms_bayes.analysis.relu_phases.relu_sweep_labels)"
        )
    if st.r != 2:
        raise ValueError(f"the exact k-gon classifier is defined for r = 2; this sweep has r = {st.r}")
    t = thresholds or FunctionalRule()
    return label_sweep(
        sweep,
        lambda post: classify_tms(post["W"].values, post["b"].values, thresholds),
        {**t.attrs(), "classifier_rule": t.describe()},
        progress=progress,
    )


def _phase_order(labels: np.ndarray, declared=None) -> list[str]:
    """Display order of the phases: ``declared`` (a classifier's own list) or k-gon order, most
    vertices first."""
    if declared is not None:
        return [str(p) for p in np.atleast_1d(declared)]
    from ..theory import parse_phase

    names = sorted(
        {str(x) for x in np.unique(labels)} - {UNCLASSIFIED},
        key=lambda p: (-parse_phase(p)[0], parse_phase(p)[1:]),
    )
    return names + [UNCLASSIFIED]


def bootstrap_shares(units, valid=None, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """Shares and percentile-bootstrap intervals from independent units.

    ``units`` (x, unit, phase): each unit's phase shares at each grid point x; ``valid`` (x, unit)
    marks the units that count (default all).  At each x the units are resampled with replacement
    among the valid ones.  Returns (share (x, P), lower, upper, bootstrap replicates (B, x, P));
    an x without valid units gives NaN."""
    units = np.asarray(units, dtype=float)
    X, U, P = units.shape
    valid = np.ones((X, U), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    rng = np.random.default_rng(seed)
    share = np.full((X, P), np.nan)
    boot = np.full((n_boot, X, P), np.nan)
    for i in range(X):
        ok = units[i, valid[i]]
        if len(ok) == 0:
            continue
        share[i] = ok.mean(axis=0)
        boot[:, i] = ok[rng.integers(0, len(ok), size=(n_boot, len(ok)))].mean(axis=1)
    lo, hi = (
        np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
        if np.isfinite(boot).any()
        else (share * np.nan, share * np.nan)
    )
    return share, lo, hi, boot


#: The name of the mass outside the phases a comparison shows.
OTHER = "other"


def on_phases(occ: xr.Dataset, phases) -> xr.Dataset:
    """Shares on the normalisation of a theory curve over ``phases`` (SPEC 2: compare only on the same
    set of phases): share_α / Σ_{β ∈ phases} share_β for each α in ``phases`` (absent phases count 0),
    with intervals from the bootstrap replicates renormalised the same way, per-seed shares likewise,
    and the phase ``"other"`` = 1 − Σ_{β ∈ phases} share_β before renormalising (the mass outside them,
    unclassified included), kept so that nothing is hidden.  Works on chain shares
    (:func:`empirical_occupancy`) and SMC posterior mass (``analysis.free_energy.smc_occupancy``)."""
    phases = [str(p) for p in phases]
    if not phases:
        raise ValueError("phases must name at least one phase")

    def pick(da):
        parts = [
            da.sel(phase=p) if p in occ.phase.values else xr.zeros_like(da.isel(phase=0)) for p in phases
        ]
        return xr.concat(parts, dim="phase").assign_coords(phase=phases)

    def renorm(da):
        sub = pick(da)
        tot = sub.sum("phase")
        with np.errstate(invalid="ignore", divide="ignore"):
            normed = sub / tot.where(tot > 0)
        other = (1.0 - tot).expand_dims(phase=[OTHER])
        return xr.concat([normed, other], dim="phase")

    share, boot, per_seed = renorm(occ.share), renorm(occ.bootstrap), renorm(occ.share_seed)
    level = (
        float(occ.attrs.get("interval", "95%").split("%")[0]) / 100
        if "%" in occ.attrs.get("interval", "")
        else 0.95
    )
    if "t-interval" in occ.attrs.get(
        "interval", ""
    ):  # few datasets: the same t-interval, on the new normalisation
        from scipy import stats

        S = per_seed.sizes["seed"]
        half = stats.t.ppf((1 + level) / 2, S - 1) * per_seed.std("seed", ddof=1) / np.sqrt(S)
        lo, hi = (share - half).clip(0, 1), (share + half).clip(0, 1)
    else:
        lo = boot.quantile((1 - level) / 2, dim="replicate").drop_vars("quantile")
        hi = boot.quantile((1 + level) / 2, dim="replicate").drop_vars("quantile")
    share = share.transpose("n", "phase")
    out = xr.Dataset(
        {
            "share": share,
            "lower": lo.transpose(*share.dims),
            "upper": hi.transpose(*share.dims),
            "share_seed": per_seed.transpose("n", "seed", "phase"),
            "bootstrap": boot.transpose("replicate", "n", "phase"),
        }
    )
    out.attrs = {
        **occ.attrs,
        "normalisation": f"renormalised over {','.join(phases)}; 'other' = mass outside them",
    }
    return out


def empirical_occupancy(
    labels: xr.Dataset, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> xr.Dataset:
    """Shares per (n, phase) with intervals from a hierarchical bootstrap (datasets, then chains; a
    t-interval over datasets when there are ≤ 6 of them —
    :func:`tms_bayes.analysis.mixing.hierarchical_bootstrap`), per-seed shares, chain-majority
    shares, mean L_n per phase, and the chains' mixing between phases: label transitions per chain,
    R̂ / ESS of the phase indicators, and ``mixed`` per n (:mod:`tms_bayes.analysis.mixing`)."""
    from .mixing import hierarchical_bootstrap, mixing_summary

    n_boot = _validate.integer("n_boot", n_boot, minimum=10)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    lab = labels["label"].values  # (n, seed, chain, draw)
    phases = _phase_order(lab, labels.attrs.get("phases"))
    catch_all = labels.attrs.get("catch_all", UNCLASSIFIED)
    onehot = np.stack([(lab == p) for p in phases], axis=-1).astype(float)  # (n, seed, chain, draw, P)
    per_chain = onehot.mean(axis=3)  # (n, seed, chain, P)
    N, S, C, P = per_chain.shape
    share, lo, hi, boot, kind = hierarchical_bootstrap(per_chain, n_boot=n_boot, level=level, seed=seed)
    majority = per_chain.argmax(axis=-1)  # (n, seed, chain)
    chain_share = np.stack([(majority == k).mean(axis=(1, 2)) for k in range(P)], axis=-1)
    Ln = labels["L_n"].values
    mean_loss = np.array(
        [[Ln[i][lab[i] == p].mean() if np.any(lab[i] == p) else np.nan for p in phases] for i in range(N)]
    )
    mix = mixing_summary(labels, [p for p in phases if p != catch_all])
    return xr.Dataset(
        {
            "share": (("n", "phase"), share, {"long_name": "share of draws (pooled over seeds and chains)"}),
            "lower": (("n", "phase"), lo),
            "upper": (("n", "phase"), hi),
            "share_seed": (("n", "seed", "phase"), per_chain.mean(axis=2)),
            "chain_share": (("n", "phase"), chain_share, {"long_name": "share of chains by majority label"}),
            "mean_L_n": (("n", "phase"), mean_loss),
            "bootstrap": (("replicate", "n", "phase"), boot),
            "transitions": mix.transitions,
            "min_transitions": mix.min_transitions,
            "mixed": mix.mixed,
            "indicator_rhat": mix.rhat.rename(phase="mixing_phase"),
            "indicator_ess": mix.ess_bulk.rename(phase="mixing_phase"),
            "indicator_assessable": mix.assessable.rename(phase="mixing_phase"),
        },
        coords={
            "n": labels.n.values,
            "phase": phases,
            "seed": labels.seed.values,
            "replicate": np.arange(n_boot),
        },
        attrs={
            **labels.attrs,
            "estimator": "chain share: an MCMC estimate of posterior mass "
            "(NUTS from prior initialisations; chains cross slowly and may not have converged)",
            "interval": kind,
            "datasets": S,
            "mixed": "an n is mixed only if every chain changes phase label at least once; "
            "unmixed n are flagged",
            "tms_bayes_version": __version__,
        },
    )


def last_upcrossing(n: np.ndarray, diff: np.ndarray) -> float:
    """Last grid interval where diff goes from < 0 to >= 0, linearly interpolated; nan if none."""
    for i in range(len(n) - 2, -1, -1):
        if diff[i] < 0 <= diff[i + 1]:
            return float(n[i] + (n[i + 1] - n[i]) * (-diff[i]) / (diff[i + 1] - diff[i]))
    return math.nan


def crossing_with_interval(x, diff, replicates, *, level: float = 0.95) -> dict:
    """Last up-crossing of ``diff`` (share(β) − share(α) on the grid ``x``) and its percentile
    interval over bootstrap ``replicates`` (B, x) of the same difference (replicates that never
    cross are left out; their complement is ``fraction_crossing``)."""
    x = np.asarray(x, dtype=float)
    point = last_upcrossing(x, np.asarray(diff, dtype=float))
    xs = np.array([last_upcrossing(x, r) for r in np.asarray(replicates, dtype=float)])
    ok = np.isfinite(xs)
    lo, hi = np.quantile(xs[ok], [(1 - level) / 2, (1 + level) / 2]) if ok.any() else (math.nan, math.nan)
    return {"point": point, "lower": float(lo), "upper": float(hi), "fraction_crossing": float(ok.mean())}


def empirical_crossover(occ: xr.Dataset, alpha: str, beta: str, *, level: float = 0.95) -> dict:
    """Empirical α → β crossover with a bootstrap interval (module docstring)."""
    for p in (alpha, beta):
        if p not in occ.phase.values:
            raise ValueError(
                f"phase {p!r} was not observed in this sweep; "
                f"observed: {', '.join(map(str, occ.phase.values))}"
            )
    c = crossing_with_interval(
        occ.n.values,
        (occ.share.sel(phase=beta) - occ.share.sel(phase=alpha)).values,
        (occ.bootstrap.sel(phase=beta) - occ.bootstrap.sel(phase=alpha)).values,
        level=level,
    )
    return {
        "from": alpha,
        "to": beta,
        "n_crit": c["point"],
        "lower": c["lower"],
        "upper": c["upper"],
        "fraction_crossing": c["fraction_crossing"],
    }


def theory_crossover_interval(
    catalogue, phase_a: str, phase_b: str, *, lambdas=None, band: float = 1.0, **scale
) -> dict:
    """Theoretical a → b crossover and the n-range where |F_a − F_b| ≤ ``band`` (module docstring).
    ``scale``: convention, sigma, beta, prior_std of :func:`tms_bayes.theory.phase_free_energies`."""
    n_crit = theory_crossover(catalogue, phase_a, phase_b, lambdas=lambdas, **scale)
    grid = np.unique(np.round(np.geomspace(10, 1e6, 20000)))
    F = phase_free_energies(catalogue, [phase_a, phase_b], grid, lambdas=lambdas, **scale)
    close = np.abs((F.sel(phase=phase_a) - F.sel(phase=phase_b)).values) <= band
    near = grid[close]
    if math.isfinite(n_crit) and near.size:
        # the contiguous stretch of grid points around n_crit
        k = np.searchsorted(grid, n_crit)
        lo_i = hi_i = min(k, len(grid) - 1)
        while lo_i > 0 and close[lo_i - 1]:
            lo_i -= 1
        while hi_i < len(grid) - 1 and close[hi_i + 1]:
            hi_i += 1
        return {
            "from": phase_a,
            "to": phase_b,
            "n_crit": n_crit,
            "lower": float(grid[lo_i]),
            "upper": float(grid[hi_i]),
        }
    return {"from": phase_a, "to": phase_b, "n_crit": n_crit, "lower": math.nan, "upper": math.nan}
