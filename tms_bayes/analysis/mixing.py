"""Chain shares treated as MCMC (SPEC 2; issue 14, item 2).

NUTS chains do cross between the 5, 5+ and 6 phases, slowly.  A chain share is therefore an MCMC
estimate of posterior mass, and it is only as good as the chains' mixing between phases:

- **label transitions** — the number of times a chain's phase label changes along its draws
  (``"unclassified"`` draws are skipped: the last named label carries over);
- **R̂ and bulk ESS of the phase indicators** 1[label = α] per (n, dataset), computed by ArviZ over
  the chains that share a dataset (chains on different datasets target different posteriors).  An
  indicator that is constant over every chain and draw cannot be assessed: its R̂ is reported as NaN
  and ``assessable`` is False — "not assessable", never "converged".  Chains that are each constant
  but disagree (every chain stuck in its own phase) get R̂ = ∞;
- an n is **mixed** only if every chain at that n makes at least one transition.

Intervals for chain shares come from a **hierarchical bootstrap**: datasets are resampled with
replacement, then chains within each resampled dataset (:func:`hierarchical_bootstrap`).  Chains on
one dataset are not independent replicates of the sampling distribution over datasets, so
resampling chains alone (the old interval) is far too narrow.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

__all__ = [
    "label_transitions",
    "indicator_diagnostics",
    "mixing_summary",
    "hierarchical_bootstrap",
    "FEW_UNITS",
]

#: With this many datasets or fewer a bootstrap interval's coverage is poor: intervals are t-intervals
#: over the per-dataset shares instead, and reports say so.
FEW_UNITS = 6


def label_transitions(labels: xr.Dataset, *, unclassified: str = "unclassified") -> xr.DataArray:
    """Number of label changes along each chain, DataArray (n, seed, chain) (module docstring)."""
    lab = np.asarray(labels["label"].values).astype(str)  # (n, seed, chain, draw)
    named = lab != unclassified
    # carry the last named label forward over unclassified draws
    idx = np.where(named, np.arange(lab.shape[-1]), 0)
    idx = np.maximum.accumulate(idx, axis=-1)
    carried = np.take_along_axis(lab, idx, axis=-1)
    seen = np.maximum.accumulate(named, axis=-1)
    changes = (carried[..., 1:] != carried[..., :-1]) & seen[..., :-1]
    return xr.DataArray(
        changes.sum(-1),
        dims=("n", "seed", "chain"),
        coords={k: labels[k].values for k in ("n", "seed", "chain")},
        name="transitions",
    )


def indicator_diagnostics(labels: xr.Dataset, phases) -> xr.Dataset:
    """R̂ (max over datasets) and bulk ESS (summed over datasets) of each phase indicator, (n, phase),
    with ``assessable`` (the indicator varies somewhere) — module docstring."""
    import arviz as az

    lab = np.asarray(labels["label"].values).astype(str)
    N, S = lab.shape[:2]
    phases = [str(p) for p in phases]
    rhat = np.full((N, len(phases)), np.nan)
    ess = np.zeros((N, len(phases)))
    assessable = np.zeros((N, len(phases)), dtype=bool)
    for i in range(N):
        for a, p in enumerate(phases):
            rh = []
            for j in range(S):
                ind = (lab[i, j] == p).astype(float)  # (chain, draw)
                if ind.min() == ind.max():  # constant: not assessable on this dataset
                    continue
                assessable[i, a] = True
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = float(az.rhat(ind))
                    e = float(az.ess(ind, method="bulk"))
                # every chain constant but not all alike: no within-chain variance, R̂ is infinite
                rh.append(r if np.isfinite(r) else np.inf)
                ess[i, a] += e if np.isfinite(e) else 0.0
            rhat[i, a] = max(rh) if rh else np.nan
    return xr.Dataset(
        {
            "rhat": (("n", "phase"), rhat),
            "ess_bulk": (("n", "phase"), ess),
            "assessable": (("n", "phase"), assessable),
        },
        coords={"n": labels.n.values, "phase": phases},
        attrs={
            "rhat": "rank-normalised split R-hat of 1[label = phase], per dataset over its chains; "
            "max over datasets",
            "ess_bulk": "bulk ESS of the indicator, summed over datasets",
            "assessable": "the indicator is not constant",
        },
    )


def mixing_summary(labels: xr.Dataset, phases) -> xr.Dataset:
    """Per n: transitions per chain (min, mean), ``mixed`` (every chain ≥ 1 transition), and the
    indicator diagnostics of ``phases`` (module docstring)."""
    tr = label_transitions(labels)
    diag = indicator_diagnostics(labels, phases)
    ds = diag.assign(
        transitions=tr,
        min_transitions=tr.min(("seed", "chain")),
        mean_transitions=tr.mean(("seed", "chain")),
        mixed=(tr >= 1).all(("seed", "chain")),
    )
    ds.attrs.update({"mixed": "every chain at this n changes phase label at least once"})
    return ds


def hierarchical_bootstrap(per_chain, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """Shares and intervals from per-chain shares (x, dataset, chain, P): the share is the mean over
    all chains; replicates resample datasets with replacement, then chains within each.  With
    ≤ :data:`FEW_UNITS` datasets the interval is the t-interval over the per-dataset shares (clipped to
    [0, 1]) instead of bootstrap percentiles.  Returns (share, lower, upper, replicates (B, x, P), kind)."""
    from scipy import stats

    per_chain = np.asarray(per_chain, dtype=float)
    X, S, C, P = per_chain.shape
    rng = np.random.default_rng(seed)
    share = per_chain.mean(axis=(1, 2))
    ds_idx = rng.integers(0, S, size=(n_boot, S))
    ch_idx = rng.integers(0, C, size=(n_boot, S, C))
    boot = np.empty((n_boot, X, P))
    for b in range(n_boot):
        picked = per_chain[:, ds_idx[b][:, None], ch_idx[b]]  # (x, S, C, P)
        boot[b] = picked.mean(axis=(1, 2))
    if S <= FEW_UNITS and S >= 2:
        per_seed = per_chain.mean(axis=2)  # (x, S, P)
        half = stats.t.ppf((1 + level) / 2, S - 1) * per_seed.std(axis=1, ddof=1) / np.sqrt(S)
        lo, hi = np.clip(share - half, 0, 1), np.clip(share + half, 0, 1)
        kind = f"{level:.0%} t-interval over {S} datasets (too few for a bootstrap)"
    else:
        lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=0)
        kind = (
            f"{level:.0%} hierarchical bootstrap (datasets, then chains within a dataset), "
            f"{n_boot} replicates"
        )
    return share, lo, hi, boot, kind
