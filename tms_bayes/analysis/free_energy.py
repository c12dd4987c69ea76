"""Posterior mass and free energy per phase from SMC (SPEC 2), beside the chain shares and theory.

**Occupancy by posterior mass.**  At each grid n and seed, the exact classifier labels every SMC
particle; the share of phase α is the total normalised weight of its particles, P̂(α | D_n).  Shares
are averaged over seeds (datasets); intervals are percentile bootstrap intervals over seeds
(:func:`tms_bayes.analysis.occupancy.bootstrap_shares`).  Unlike chain shares, this estimates
posterior mass: mass moves between phases through the weights as data arrive.

**Free energy per phase.**  F_n(W_α) = F_n − log P̂(α | D_n), in the loss convention
F_n = −log ∫ φ e^{−n L_n} (see :mod:`tms_bayes.inference.smc_sweep`).  Watanabe's expansion
F_n(W_α) ≈ n L_n(w*_α) + λ_α log n + c_α is checked two ways:

- against the theory layer's n L_α + λ_α log n + c_α (population loss L_α and c_α = ½‖w*_α‖² of
  the catalogue);
- λ_α from the growth of G_n = F_n(W_α) − n_eff L_n(ŵ_α) in log n (n_eff = nβ/(2σ²), the
  energy's scale), where ŵ_α is the local minimum of L_n inside the phase on D_n (found from the
  phase's best particle; it differs from the population critical point by O(n^{-1/2}), which
  changes G_n by O(1)).  Per seed, an ordinary least-squares slope of G_n on log n over the grid
  points where the phase holds at least ``min_particles`` effective particles; λ̂_α = the mean slope
  over seeds, with a t interval over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .. import __version__, _validate
from .occupancy import bootstrap_shares, _phase_order
from .phases import Rule, classify_tms

__all__ = [
    "smc_labels",
    "repeat_labels",
    "repeat_spread",
    "log_odds",
    "log_odds_crossover",
    "smc_occupancy",
    "phase_free_energy",
    "lambda_from_growth",
    "agreement",
]


def _unit_labels(smc, units, dim: str, coord, thresholds: Rule | None) -> xr.Dataset:
    """Labels, log weights, L_n and F_n of the SMC runs ``units`` [(seed, rep)], stacked along ``dim``."""
    st = smc.sweep_settings
    if st.model != "tms":
        raise ValueError(f"k-gon phases need a TMS run; {smc.out} is {st.model!r}")
    P, shape = smc.settings.particles, (len(st.n), len(units))
    lab = np.empty((*shape, P), dtype=object)
    logw, loss, F, F_model = np.empty((*shape, P)), np.empty((*shape, P)), np.empty(shape), np.empty(shape)
    for i, n in enumerate(st.n):
        for j, (s, r) in enumerate(units):
            idata = smc.load(n, s, r)
            post = idata.posterior
            lab[i, j] = classify_tms(post["W"].values[0], post["b"].values[0], thresholds)
            logw[i, j] = idata.sample_stats["log_weight"].values[0]
            loss[i, j] = post["L_n"].values[0]
            F[i, j] = post.attrs["free_energy_loss"]
            F_model[i, j] = post.attrs["free_energy"]
    return xr.Dataset(
        {
            "label": (("n", dim, "particle"), lab.astype(str)),
            "log_weight": (("n", dim, "particle"), logw),
            "L_n": (("n", dim, "particle"), loss),
            "F_n": (("n", dim), F, {"long_name": "−log ∫ φ e^{−nβ L_n/(2σ²)} (loss convention)"}),
            "F_n_model": (("n", dim), F_model),
        },
        coords={"n": np.array(st.n), dim: np.array(coord), "particle": np.arange(P)},
        attrs={"smc": str(smc.out), "particles": P},
    )


def smc_labels(smc, thresholds: Rule | None = None) -> xr.Dataset:
    """Labels, normalised log weights and L_n of every particle: dims (n, seed, particle); with
    F_n (loss convention) per (n, seed)."""
    seeds = sorted(smc.completed)
    if not seeds:
        raise ValueError(f"{smc.out} has no finished SMC seeds")
    return _unit_labels(smc, [(s, 0) for s in seeds], "seed", seeds, thresholds)


def repeat_labels(smc, thresholds: Rule | None = None) -> xr.Dataset | None:
    """As :func:`smc_labels` for the independent SMC runs on dataset seed 0 (dims n, run, particle;
    run 0 is the sweep's own run), or None when the run has no repeats."""
    reps = sorted(smc.repeats_completed)
    if not reps or 0 not in smc.completed:
        return None
    return _unit_labels(smc, [(0, r) for r in [0, *reps]], "run", [0, *reps], thresholds)


def repeat_spread(rep_labels: xr.Dataset, phase_a: str = "5", phase_b: str = "6") -> xr.Dataset:
    """ΔF = F_a − F_b = log P(b | D_n) − log P(a | D_n) of each independent SMC run on one dataset, and
    their mean and standard deviation over runs per n: the sampler's Monte Carlo error alone."""
    lab = rep_labels["label"].values
    phases = _phase_order(lab)
    share, _ = _weighted_shares(lab, rep_labels["log_weight"].values, phases)
    dF = log_odds(
        xr.DataArray(
            share,
            dims=("n", "run", "phase"),
            coords={"n": rep_labels.n.values, "run": rep_labels.run.values, "phase": phases},
        ),
        phase_a,
        phase_b,
    )
    finite = dF.where(np.isfinite(dF))
    return xr.Dataset(
        {
            "dF": dF,
            "mean": finite.mean("run"),
            "sd": finite.std("run", ddof=1),
            "runs": np.isfinite(dF).sum("run"),
        },
        attrs={
            "log_odds": f"F_{phase_a} - F_{phase_b}",
            "spread": "independent SMC runs (fresh particles and PRNG) on dataset seed 0",
        },
    )


def _weighted_shares(lab: np.ndarray, log_weight: np.ndarray, phases) -> tuple[np.ndarray, np.ndarray]:
    """Per run and n: each phase's share of the normalised weights and its effective number of
    particles (Σ w)² / Σ w² over the phase's particles; arrays (…, phase)."""
    W = np.exp(log_weight)
    W = W / W.sum(axis=-1, keepdims=True)
    share = np.stack([(W * (lab == p)).sum(axis=-1) for p in phases], axis=-1)
    ess = np.stack(
        [
            np.where(lab == p, W, 0).sum(-1) ** 2 / np.maximum(np.where(lab == p, W**2, 0).sum(-1), 1e-300)
            for p in phases
        ],
        axis=-1,
    )
    return share, ess


def smc_occupancy(
    labels: xr.Dataset, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> xr.Dataset:
    """Posterior-mass shares per (n, phase) with bootstrap intervals over seeds (module docstring).
    Same variable names as :func:`tms_bayes.analysis.occupancy.empirical_occupancy`, so
    :func:`~tms_bayes.analysis.occupancy.empirical_crossover` applies unchanged."""
    lab = labels["label"].values
    phases = _phase_order(lab)
    per_seed, ess = _weighted_shares(lab, labels["log_weight"].values, phases)  # (n, seed, P)
    share, lo, hi, boot = bootstrap_shares(per_seed, n_boot=n_boot, level=level, seed=seed)
    return xr.Dataset(
        {
            "share": (("n", "phase"), share, {"long_name": "posterior mass (SMC weights), mean over seeds"}),
            "lower": (("n", "phase"), lo),
            "upper": (("n", "phase"), hi),
            "share_seed": (("n", "seed", "phase"), per_seed),
            "phase_ess": (
                ("n", "seed", "phase"),
                ess,
                {"long_name": "effective number of particles in the phase"},
            ),
            "bootstrap": (("replicate", "n", "phase"), boot),
        },
        coords={
            "n": labels.n.values,
            "phase": phases,
            "seed": labels.seed.values,
            "replicate": np.arange(n_boot),
        },
        attrs={
            **labels.attrs,
            "estimator": "posterior mass: normalised SMC weights of each phase's particles",
            "interval": f"{level:.0%} percentile bootstrap over seeds, {n_boot} replicates",
            "tms_bayes_version": __version__,
        },
    )


def phase_free_energy(labels: xr.Dataset, occ: xr.Dataset) -> xr.DataArray:
    """F_n(W_α) = F_n − log P̂(α | D_n) per (n, seed, phase); NaN where the phase has no mass."""
    with np.errstate(divide="ignore"):
        logp = np.log(occ.share_seed.values)
    F = labels.F_n.values[..., None] - logp
    F[~np.isfinite(F)] = np.nan
    return xr.DataArray(
        F,
        dims=("n", "seed", "phase"),
        coords={"n": occ.n.values, "seed": occ.seed.values, "phase": occ.phase.values},
        name="F_phase",
        attrs={"formula": "F_n(W_a) = F_n - log P(a | D_n), loss convention"},
    )


def lambda_from_growth(
    F_phase: xr.DataArray,
    loss_min: xr.DataArray,
    occ: xr.Dataset,
    phases,
    *,
    n_eff=None,
    min_particles: float = 20.0,
    level: float = 0.95,
) -> xr.Dataset:
    """λ̂_α from the slope of G_n = F_n(W_α) − n_eff L_n(ŵ_α) on log n, per seed and pooled (module
    docstring).  ``loss_min`` (n, seed, phase): L_n at the phase's local minimum on D_n.  ``n_eff``
    (per grid n): the energy's scale nβ/(2σ²) (:func:`tms_bayes.theory.laplace.n_effective`), default n
    (σ² = 1/2, β = 1); with σ = 1 and n in its place the energy term is doubled and λ̂ comes out
    negative.  The slope on log n equals the slope on log n_eff (they differ by a constant)."""
    from scipy import stats

    _validate.positive("min_particles", min_particles)
    n = F_phase.n.values.astype(float)
    ne = n if n_eff is None else np.broadcast_to(np.asarray(n_eff, dtype=float), n.shape)
    out = {"lambda": [], "lower": [], "upper": [], "se": [], "seeds_used": [], "points": []}
    per_seed, G_all = [], []
    for p in phases:
        G = (F_phase.sel(phase=p) - ne[:, None] * loss_min.sel(phase=p)).values  # (n, seed)
        ok = np.isfinite(G) & (occ.phase_ess.sel(phase=p).values >= min_particles)
        slopes = []
        for j in range(G.shape[1]):
            m = ok[:, j]
            slopes.append(np.polyfit(np.log(n[m]), G[m, j], 1)[0] if m.sum() >= 3 else np.nan)
        slopes = np.array(slopes)
        good = slopes[np.isfinite(slopes)]
        k = len(good)
        mean = float(good.mean()) if k else math.nan
        se = float(good.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
        t = stats.t.ppf((1 + level) / 2, k - 1) if k > 1 else math.nan
        out["lambda"].append(mean)
        out["se"].append(se)
        out["lower"].append(mean - t * se)
        out["upper"].append(mean + t * se)
        out["seeds_used"].append(k)
        out["points"].append(int(ok.sum()))
        per_seed.append(slopes)
        G_all.append(G)
    return xr.Dataset(
        {
            **{k: (("phase",), np.array(v, dtype=float)) for k, v in out.items()},
            "lambda_seed": (("phase", "seed"), np.array(per_seed)),
            "G": (("phase", "n", "seed"), np.array(G_all)),
        },
        coords={"phase": list(phases), "seed": F_phase.seed.values, "n": n},
        attrs={
            "formula": "slope of F_n(W_a) - n_eff L_n(w_a) on log n, OLS per seed; "
            "mean over seeds with a t interval",
            "level": level,
            "min_particles": min_particles,
        },
    )


def agreement(
    smc_occ: xr.Dataset,
    theory_dF: xr.DataArray,
    *,
    chains_occ: xr.Dataset | None = None,
    repeats: xr.Dataset | None = None,
    phase_a: str = "5",
    phase_b: str = "6",
    min_particles: float = 20.0,
    trusted_from: float = 0.0,
) -> xr.Dataset:
    """Measured against theory as log-odds, per n: ΔF = F_a − F_b = log P(b | D_n) − log P(a | D_n).

    - SMC: ΔF per dataset from the phases' weights; mean and standard error over datasets;
    - theory: ``theory_dF`` (n, seed), e.g. the per-dataset Laplace expansion
      (:func:`tms_bayes.theory.laplace.dataset_free_energies`) on the same datasets;
    - the paired difference SMC − theory per dataset, its mean and SE, and a verdict per n:
      ``"agree"`` when |mean| ≤ 2 SE, ``"disagree"`` otherwise, ``"not comparable"`` when the minority
      phase holds fewer than ``min_particles`` effective particles on some dataset (its share is then
      not measured, only bounded), or when n < ``trusted_from``, below the range where the theory's
      expansion holds (:data:`tms_bayes.theory.free_energy.TRUSTED_FROM`); the reason is in ``why``;
    - chains (optional): ΔF from the pooled chain shares, and the paired difference chains − SMC per
      dataset (mean, SE) with ``chains_verdict``: ``"unmixed"`` where some chain never changed label
      (its share then reflects where it started), else agree / disagree by the same 2-SE rule;
    - the spread of SMC's ΔF reported two ways: the standard deviation over datasets (``smc_sd``: data
      and sampler together) and, with ``repeats`` (:func:`repeat_spread`), over independent SMC runs on
      one dataset (``smc_sd_runs``: the sampler alone).
    Returns a Dataset (n) with these variables and the verdicts."""
    ea, eb = (
        smc_occ.phase_ess.sel(phase=p)
        if p in smc_occ.phase.values
        else xr.zeros_like(smc_occ.phase_ess.isel(phase=0))
        for p in (phase_a, phase_b)
    )
    smc_dF = log_odds(smc_occ.share_seed, phase_a, phase_b)  # (n, seed)
    th = theory_dF.sel(n=smc_occ.n.values, seed=smc_occ.seed.values)
    S = smc_occ.sizes["seed"]
    comparable = (np.minimum(ea, eb) >= min_particles).all("seed")
    paired = smc_dF - th

    # ΔF is ±∞ on a dataset where a phase holds no particle: its mean is ±∞, its SE NaN
    def mean_se(x):
        with np.errstate(invalid="ignore"):
            return x.mean("seed"), x.std("seed", ddof=1) / math.sqrt(S) if S > 1 else x.mean("seed") * np.nan

    m_smc, se_smc = mean_se(smc_dF)
    m_th, se_th = mean_se(th)
    m_d, se_d = mean_se(paired)
    few = ~comparable.values
    untrusted = smc_occ.n.values < trusted_from * (1 - 1e-9)  # trusted_from may come from a division
    comparable = comparable & ~untrusted
    verdict = np.where(
        few | untrusted,
        "not comparable",
        np.where(np.abs(m_d.values) <= 2 * se_d.values, "agree", "disagree"),
    )
    why = np.where(
        few,
        f"< {min_particles:g} effective particles in a phase",
        np.where(untrusted, f"theory untrusted below n = {trusted_from:g}", ""),
    )
    out = xr.Dataset(
        {
            "smc_dF": m_smc,
            "smc_se": se_smc,
            "theory_dF": m_th,
            "theory_se": se_th,
            "difference": m_d,
            "difference_se": se_d,
            "comparable": comparable,
            "verdict": ("n", verdict.astype(str)),
            "why": ("n", why.astype(str)),
            "min_phase_ess": np.minimum(ea, eb).min("seed"),
        }
    )
    out["smc_sd"] = se_smc * math.sqrt(S)
    if repeats is not None:
        out["smc_sd_runs"] = repeats.sd.reindex(n=smc_occ.n.values)
    if chains_occ is not None:
        out["chains_dF"] = log_odds(chains_occ.share, phase_a, phase_b).sel(n=smc_occ.n.values)
        if "share_seed" in chains_occ and set(chains_occ.seed.values) >= set(smc_occ.seed.values):
            # chains against SMC on the same datasets, paired; only where every chain changed label
            cdf = log_odds(chains_occ.share_seed, phase_a, phase_b).sel(
                n=smc_occ.n.values, seed=smc_occ.seed.values
            )
            m_c, se_c = mean_se(cdf - smc_dF)
            mixed = (
                chains_occ.mixed.sel(n=smc_occ.n.values).values.astype(bool)
                if "mixed" in chains_occ
                else np.ones(len(m_c), bool)
            )
            ok = np.isfinite(m_c.values) & np.isfinite(se_c.values)
            out["chains_minus_smc"], out["chains_minus_smc_se"] = m_c, se_c
            out["chains_verdict"] = (
                "n",
                np.where(
                    ~mixed,
                    "unmixed",
                    np.where(
                        ~ok,
                        "not comparable",
                        np.where(np.abs(m_c.values) <= 2 * se_c.values, "agree", "disagree"),
                    ),
                ).astype(str),
            )
    out.attrs = {
        **({"runs_on_one_dataset": int(repeats.sizes["run"])} if repeats is not None else {}),
        "log_odds": f"F_{phase_a} - F_{phase_b} = log P({phase_b}) - log P({phase_a})",
        "datasets": S,
        "verdict": f"agree when |mean paired difference| <= 2 SE over {S} datasets; "
        f"not comparable below {min_particles:g} effective "
        f"particles or below n = {trusted_from:g}",
    }
    return out


#: |ΔF| beyond which a log-odds only says "one phase has (almost) all the mass": where a phase holds no
#: particle or draw, ΔF is ±∞; crossings are located on ΔF clipped to this range.
LOG_ODDS_CLIP = 30.0


def log_odds(share_seed: xr.DataArray, phase_a: str = "5", phase_b: str = "6") -> xr.DataArray:
    """ΔF = F_a − F_b = log P(b) − log P(a) from shares with a ``phase`` dimension (per dataset or
    pooled); a phase that was not observed at all has share 0."""
    sa, sb = (
        share_seed.sel(phase=p) if p in share_seed.phase.values else xr.zeros_like(share_seed.isel(phase=0))
        for p in (phase_a, phase_b)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.log(sb) - np.log(sa)).rename("dF")


def log_odds_crossover(dF: xr.DataArray, *, level: float = 0.95) -> dict:
    """The a → b crossover from per-dataset log-odds ΔF = F_a − F_b (n, seed): the n where the mean
    over datasets last crosses 0 upwards (linear interpolation in n), and each dataset's own last
    up-crossing.  Interval: min–max of the per-dataset crossovers with ≤ ``FEW_UNITS`` datasets (too few
    for a coverage statement), else a t-interval; datasets whose ΔF never crosses are counted
    (``fraction_crossing``) and left out of the interval.  ΔF is clipped to ±``LOG_ODDS_CLIP``."""
    from scipy import stats

    from .mixing import FEW_UNITS
    from .occupancy import last_upcrossing

    n = dF.n.values.astype(float)
    # ±inf → ±clip; NaN stays
    x = np.clip(dF.transpose("n", "seed").values, -LOG_ODDS_CLIP, LOG_ODDS_CLIP)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(x, axis=1) if np.isfinite(x).any() else np.full(len(n), np.nan)
    ok_n = np.isfinite(mean)
    point = last_upcrossing(n[ok_n], mean[ok_n])
    per = []
    for j in range(x.shape[1]):
        m = np.isfinite(x[:, j])
        per.append(last_upcrossing(n[m], x[m, j]))
    per = np.array(per)
    good = per[np.isfinite(per)]
    S = len(good)
    if S == 0:
        lo = hi = math.nan
        kind = "no dataset crosses"
    elif S <= FEW_UNITS:
        lo, hi = float(good.min()), float(good.max())
        kind = f"min–max over {S} datasets (too few for a coverage statement)"
    else:
        half = stats.t.ppf((1 + level) / 2, S - 1) * good.std(ddof=1) / math.sqrt(S)
        lo, hi = float(good.mean() - half), float(good.mean() + half)
        kind = f"{level:.0%} t-interval over {S} per-dataset crossovers"
    return {
        "n_crit": point,
        "lower": lo,
        "upper": hi,
        "per_dataset": per.tolist(),
        "fraction_crossing": S / max(len(per), 1),
        "interval": kind,
    }
