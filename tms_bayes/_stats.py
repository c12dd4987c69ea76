"""One Monte Carlo standard error for every mean over MCMC draws in tms-bayes (λ̂ from NUTS/SGLD
traces, SGD-trajectory λ̂, E_β[n L_n] of WBIC and the two-temperature λ̂):

    mean = average over chains and draws,   SE = sd / √ESS,

sd over every draw (ddof 0) and ESS ArviZ's "mean" effective sample size over the chains — the ESS that
belongs to the error of a mean (``az.mcse(method="mean")`` is the same formula).  NaN with ≤ 3 draws per
chain or a non-finite ESS."""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["mean_and_se"]


def mean_and_se(draws) -> tuple[float, float, float]:
    """(mean, SE, ESS) of ``draws`` shaped (chain, draw) (or (draw,) for one chain)."""
    import arviz as az

    x = np.asarray(draws, dtype=float)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"draws must be (chain, draw) or (draw,), got shape {x.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = float(az.ess(x, method="mean")) if x.shape[1] > 3 else float("nan")
    sd = float(np.std(x))
    se = sd / math.sqrt(ess) if ess > 0 and math.isfinite(ess) else float("nan")
    return float(x.mean()), se, ess
