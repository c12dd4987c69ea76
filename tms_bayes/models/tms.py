"""The TMS posterior as a PyMC model (SPEC 1–2).

    W ~ N(0, prior_std²) (r × c),   b ~ N(0, prior_std²) (c),
    log p(D_n | W, b) = β Σ_k m_k Σ_j log N(x_kj | f_j(x_k; W, b), σ²),   f = ReLU(WᵀW x + b).

With σ² = 1/2 (the default, the paper's convention) the log-likelihood is −β n L_n + const, so the
log density is −n β L_n − ½‖w‖²/prior_std² + const.  The mask m ∈ {0, 1}^N selects the first n of N
rows (D_n ⊂ D_N), so one compiled log density serves every n of a sweep; β tempers the likelihood.
Data, mask and β are ``pm.Data`` containers: the sampling engine turns them into arguments.
"""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .. import _validate
from ..theory.potential import _potential
from ._pymc_compat import patch_blackjax_sampler

patch_blackjax_sampler()  # pm.sample(nuts_sampler="blackjax") on these models, with the blackjax we pin (see _pymc_compat)

__all__ = ["tms_model", "tms_population_model", "SIGMA_PAPER"]

#: σ = √(1/2): the Gaussian likelihood whose log is −n L_n + const (SPEC 2).
SIGMA_PAPER = math.sqrt(0.5)


def _mask(mask, N: int) -> np.ndarray:
    if mask is None:
        return np.ones(N)
    mask = _validate.finite_array("mask", mask)
    if mask.shape != (N,) or not np.all((mask == 0) | (mask == 1)):
        raise ValueError(f"mask must be a 0/1 vector of length N = {N} (rows of the data), got shape {mask.shape}")
    if mask.sum() < 1:
        raise ValueError("mask must select at least one row (n >= 1)")
    return mask.astype(float)


def tempered_gaussian_loglik(y, f, mask, beta, sigma):
    """β Σ_k m_k Σ_j log N(y_kj | f_kj, σ²) as a pytensor expression (rows k, optional outputs j)."""
    resid2 = (y - f) ** 2
    per_row = -0.5 * resid2 / sigma**2 - 0.5 * math.log(2 * math.pi * sigma**2)
    if per_row.ndim == 2:
        per_row = per_row.sum(axis=1)
    return beta * pt.sum(mask * per_row)


def tms_model(X, *, r: int = 2, prior_std: float = 1.0, sigma: float = SIGMA_PAPER, beta: float = 1.0, mask=None) -> pm.Model:
    """Build the TMS posterior for inputs ``X`` (N, c) (module docstring).

    ``mask`` (N,) of 0/1 selects the rows in D_n (default: all); ``beta`` tempers the likelihood.
    The model records L_n (over the selected rows) as the Deterministic ``L_n``.
    """
    X = _validate.finite_array("X", X, ndim_min=2)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (N, c) with N >= 1 and c >= 1, got {X.shape}")
    r = _validate.integer("r", r, minimum=1)
    prior_std = _validate.positive("prior_std", prior_std)
    sigma = _validate.positive("sigma", sigma)
    beta = _validate.positive("beta", beta)
    N, c = X.shape
    coords = {"row": np.arange(r), "col": np.arange(c), "obs": np.arange(N), "feature": np.arange(c)}
    with pm.Model(coords=coords) as model:
        Xd = pm.Data("X", X, dims=("obs", "feature"))
        md = pm.Data("mask", _mask(mask, N), dims="obs")
        bd = pm.Data("beta", np.asarray(beta, dtype=float))
        W = pm.Normal("W", 0.0, prior_std, dims=("row", "col"))
        b = pm.Normal("b", 0.0, prior_std, dims="col")
        f = pt.maximum(pt.dot(Xd, pt.dot(W.T, W)) + b, 0.0)
        n = pt.sum(md)
        pm.Deterministic("L_n", pt.sum(md * pt.sum((Xd - f) ** 2, axis=1)) / n)
        pm.Potential("loglik", tempered_gaussian_loglik(Xd, f, md, bd, sigma))
    model.tms_settings = {"model": "tms", "r": r, "c": c, "prior_std": prior_std, "sigma": sigma}
    return model


def tms_population_model(c: int, *, n: int, r: int = 2, prior_std: float = 1.0, beta: float = 1.0) -> pm.Model:
    """The TMS posterior in the infinite-data limit: L_n replaced by the closed-form potential L
    (SPEC 1.1), log density −nβ L(W, b) − ½‖w‖²/prior_std² + const.

    This is E_D[log-likelihood] at sample size ``n`` (σ² = 1/2): the "population" posterior whose
    critical points are exactly the catalogue's, with none of a finite dataset's fluctuation
    (L_n − L = O_p(n^{-1/2})).  Use it to study λ and λ̂ of the potential itself — a critical point of
    L is a critical point here, whereas a finite dataset moves it.  Each log-density evaluation costs
    O(c²), independent of n.  ``n`` is a ``pm.Data`` container ("n") like the data of :func:`tms_model`,
    and L is recorded as the Deterministic ``L_n`` so every downstream tool works unchanged.
    """
    c = _validate.integer("c", c, minimum=2)
    r = _validate.integer("r", r, minimum=1)
    n = _validate.integer("n", n, minimum=2)
    prior_std = _validate.positive("prior_std", prior_std)
    beta = _validate.positive("beta", beta)
    coords = {"row": np.arange(r), "col": np.arange(c)}
    with pm.Model(coords=coords) as model:
        nd = pm.Data("n", np.asarray(float(n)))
        bd = pm.Data("beta", np.asarray(beta, dtype=float))
        W = pm.Normal("W", 0.0, prior_std, dims=("row", "col"))
        b = pm.Normal("b", 0.0, prior_std, dims="col")
        L = _potential(pt, W, b)
        pm.Deterministic("L_n", L)
        pm.Potential("loglik", -bd * nd * L)
    model.tms_settings = {"model": "tms-population", "r": r, "c": c, "prior_std": prior_std, "sigma": SIGMA_PAPER}
    return model
