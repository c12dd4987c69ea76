"""Posterior mass and free energy per phase from SMC (SPEC 2), beside the chain shares and theory.

**Occupancy by posterior mass.**  At each grid n and seed, the exact classifier labels every SMC
particle; the share of phase α is the total normalised weight of its particles, P̂(α | D_n).  Shares
are averaged over seeds (datasets); intervals are percentile bootstrap intervals over seeds
(:func:`tms_bayes.analysis.occupancy.bootstrap_shares`).  Unlike chain shares, this estimates
posterior mass: mass moves between phases through the weights as data arrive.

**Free energy per phase.**  F_n(W_α) = F_n − log P̂(α | D_n), in the loss convention
F_n = −log ∫ φ e^{−n L_n} (see :mod:`tms_bayes.inference.smc_sweep`).  Watanabe's expansion
F_n(W_α) ≈ n L_n(w*_α) + λ_α log n + c_α is checked two ways:

- against the theory layer's n L_α + λ_α log n + c_α (population loss L_α and c_α = ½‖w*_α‖² of the catalogue);
- λ_α from the growth of G_n = F_n(W_α) − n L_n(ŵ_α) in log n, where ŵ_α is the local minimum of L_n
  inside the phase on D_n (found from the phase's best particle; it differs from the population
  critical point by O(n^{-1/2}), which changes G_n by O(1)).  Per seed, an ordinary least-squares
  slope of G_n on log n over the grid points where the phase holds at least ``min_particles``
  effective particles; λ̂_α = the mean slope over seeds, with a t interval over seeds.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .. import __version__, _validate
from .occupancy import bootstrap_shares, _phase_order
from .phases import Rule, classify_tms

__all__ = ["smc_labels", "smc_occupancy", "phase_free_energy", "lambda_from_growth", "agreement"]


def smc_labels(smc, thresholds: Rule | None = None) -> xr.Dataset:
    """Labels, normalised log weights and L_n of every particle: dims (n, seed, particle); with
    F_n (loss convention) per (n, seed)."""
    st = smc.sweep_settings
    if st.model != "tms":
        raise ValueError(f"k-gon phases need a TMS run; {smc.out} is {st.model!r}")
    seeds = sorted(smc.completed)
    if not seeds:
        raise ValueError(f"{smc.out} has no finished SMC seeds")
    P = smc.settings.particles
    lab = np.empty((len(st.n), len(seeds), P), dtype=object)
    logw, loss, F, F_model = (np.empty((len(st.n), len(seeds), P)), np.empty((len(st.n), len(seeds), P)), np.empty((len(st.n), len(seeds))), np.empty((len(st.n), len(seeds))))
    for i, n in enumerate(st.n):
        for j, s in enumerate(seeds):
            idata = smc.load(n, s)
            post = idata.posterior
            lab[i, j] = classify_tms(post["W"].values[0], post["b"].values[0], thresholds)
            logw[i, j] = idata.sample_stats["log_weight"].values[0]
            loss[i, j] = post["L_n"].values[0]
            F[i, j] = post.attrs["free_energy_loss"]
            F_model[i, j] = post.attrs["free_energy"]
    return xr.Dataset(
        {"label": (("n", "seed", "particle"), lab.astype(str)), "log_weight": (("n", "seed", "particle"), logw), "L_n": (("n", "seed", "particle"), loss),
         "F_n": (("n", "seed"), F, {"long_name": "−log ∫ φ e^{−nβ L_n/(2σ²)} (loss convention)"}), "F_n_model": (("n", "seed"), F_model)},
        coords={"n": np.array(st.n), "seed": np.array(seeds), "particle": np.arange(P)},
        attrs={"smc": str(smc.out), "particles": P},
    )


def smc_occupancy(labels: xr.Dataset, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> xr.Dataset:
    """Posterior-mass shares per (n, phase) with bootstrap intervals over seeds (module docstring).
    Same variable names as :func:`tms_bayes.analysis.occupancy.empirical_occupancy`, so
    :func:`~tms_bayes.analysis.occupancy.empirical_crossover` applies unchanged."""
    lab = labels["label"].values
    phases = _phase_order(lab)
    W = np.exp(labels["log_weight"].values)
    W = W / W.sum(axis=-1, keepdims=True)
    per_seed = np.stack([(W * (lab == p)).sum(axis=-1) for p in phases], axis=-1)  # (n, seed, P)
    ess = np.stack([np.where(lab == p, W, 0).sum(-1) ** 2 / np.maximum(np.where(lab == p, W**2, 0).sum(-1), 1e-300) for p in phases], axis=-1)
    share, lo, hi, boot = bootstrap_shares(per_seed, n_boot=n_boot, level=level, seed=seed)
    return xr.Dataset(
        {
            "share": (("n", "phase"), share, {"long_name": "posterior mass (SMC weights), mean over seeds"}),
            "lower": (("n", "phase"), lo),
            "upper": (("n", "phase"), hi),
            "share_seed": (("n", "seed", "phase"), per_seed),
            "phase_ess": (("n", "seed", "phase"), ess, {"long_name": "effective number of particles in the phase"}),
            "bootstrap": (("replicate", "n", "phase"), boot),
        },
        coords={"n": labels.n.values, "phase": phases, "seed": labels.seed.values, "replicate": np.arange(n_boot)},
        attrs={**labels.attrs, "estimator": "posterior mass: normalised SMC weights of each phase's particles",
               "interval": f"{level:.0%} percentile bootstrap over seeds, {n_boot} replicates", "tms_bayes_version": __version__},
    )


def phase_free_energy(labels: xr.Dataset, occ: xr.Dataset) -> xr.DataArray:
    """F_n(W_α) = F_n − log P̂(α | D_n) per (n, seed, phase); NaN where the phase has no mass."""
    with np.errstate(divide="ignore"):
        logp = np.log(occ.share_seed.values)
    F = labels.F_n.values[..., None] - logp
    F[~np.isfinite(F)] = np.nan
    return xr.DataArray(F, dims=("n", "seed", "phase"), coords={"n": occ.n.values, "seed": occ.seed.values, "phase": occ.phase.values},
                        name="F_phase", attrs={"formula": "F_n(W_a) = F_n - log P(a | D_n), loss convention"})


def lambda_from_growth(F_phase: xr.DataArray, loss_min: xr.DataArray, occ: xr.Dataset, phases, *, min_particles: float = 20.0, level: float = 0.95) -> xr.Dataset:
    """λ̂_α from the slope of G_n = F_n(W_α) − n L_n(ŵ_α) on log n, per seed and pooled (module
    docstring).  ``loss_min`` (n, seed, phase): L_n at the phase's local minimum on D_n."""
    from scipy import stats

    _validate.positive("min_particles", min_particles)
    n = F_phase.n.values.astype(float)
    out = {"lambda": [], "lower": [], "upper": [], "se": [], "seeds_used": [], "points": []}
    per_seed, G_all = [], []
    for p in phases:
        G = (F_phase.sel(phase=p) - n[:, None] * loss_min.sel(phase=p)).values  # (n, seed)
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
        {**{k: (("phase",), np.array(v, dtype=float)) for k, v in out.items()},
         "lambda_seed": (("phase", "seed"), np.array(per_seed)), "G": (("phase", "n", "seed"), np.array(G_all))},
        coords={"phase": list(phases), "seed": F_phase.seed.values, "n": n},
        attrs={"formula": "slope of F_n(W_a) - n L_n(w_a) on log n, OLS per seed; mean over seeds with a t interval", "level": level, "min_particles": min_particles},
    )


def agreement(smc_occ: xr.Dataset, theory_dF: xr.DataArray, *, chains_occ: xr.Dataset | None = None, phase_a: str = "5",
              phase_b: str = "6", min_particles: float = 20.0) -> xr.Dataset:
    """Measured against theory as log-odds, per n: ΔF = F_a − F_b = log P(b | D_n) − log P(a | D_n).

    - SMC: ΔF per dataset from the phases' weights; mean and standard error over datasets;
    - theory: ``theory_dF`` (n, seed), e.g. the per-dataset Laplace expansion
      (:func:`tms_bayes.theory.laplace.dataset_free_energies`) on the same datasets;
    - the paired difference SMC − theory per dataset, its mean and SE, and a verdict per n:
      ``"agree"`` when |mean| ≤ 2 SE, ``"disagree"`` otherwise, ``"not comparable"`` when the minority
      phase holds fewer than ``min_particles`` effective particles on some dataset (its share is then
      not measured, only bounded);
    - chains (optional): ΔF from the pooled chain shares, for reference (no SE: chains are not
      independent draws of the posterior mass).
    Returns a Dataset (n) with these variables and the verdicts."""
    sa, sb = (smc_occ.share_seed.sel(phase=p) if p in smc_occ.phase.values else xr.zeros_like(smc_occ.share_seed.isel(phase=0)) for p in (phase_a, phase_b))
    ea, eb = (smc_occ.phase_ess.sel(phase=p) if p in smc_occ.phase.values else xr.zeros_like(smc_occ.phase_ess.isel(phase=0)) for p in (phase_a, phase_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        smc_dF = np.log(sb) - np.log(sa)  # (n, seed)
    th = theory_dF.sel(n=smc_occ.n.values, seed=smc_occ.seed.values)
    S = smc_occ.sizes["seed"]
    comparable = (np.minimum(ea, eb) >= min_particles).all("seed")
    paired = smc_dF - th

    def mean_se(x):
        return x.mean("seed"), x.std("seed", ddof=1) / math.sqrt(S) if S > 1 else x.mean("seed") * np.nan

    m_smc, se_smc = mean_se(smc_dF)
    m_th, se_th = mean_se(th)
    m_d, se_d = mean_se(paired)
    verdict = np.where(~comparable.values, "not comparable", np.where(np.abs(m_d.values) <= 2 * se_d.values, "agree", "disagree"))
    out = xr.Dataset({"smc_dF": m_smc, "smc_se": se_smc, "theory_dF": m_th, "theory_se": se_th, "difference": m_d, "difference_se": se_d,
                      "comparable": comparable, "verdict": ("n", verdict.astype(str)), "min_phase_ess": np.minimum(ea, eb).min("seed")})
    if chains_occ is not None:
        ca, cb = (chains_occ.share.sel(phase=p) if p in chains_occ.phase.values else xr.zeros_like(chains_occ.share.isel(phase=0)) for p in (phase_a, phase_b))
        with np.errstate(divide="ignore", invalid="ignore"):
            out["chains_dF"] = (np.log(cb) - np.log(ca)).sel(n=smc_occ.n.values)
    out.attrs = {"log_odds": f"F_{phase_a} - F_{phase_b} = log P({phase_b}) - log P({phase_a})", "datasets": S,
                 "verdict": f"agree when |mean paired difference| <= 2 SE over {S} datasets; not comparable below {min_particles:g} effective particles"}
    return out
