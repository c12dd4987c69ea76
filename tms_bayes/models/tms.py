"""The TMS posterior as a PyMC model (SPEC 1–2).

    W ~ N(0, prior_std²) (r × c),   b ~ N(0, prior_std²) (c),
    log p(D_n | W, b) = β Σ_k m_k Σ_j log N(x_kj | f_j(x_k; W, b), σ²),   f = ReLU(WᵀW x + b).

With σ² = 1/2 (the default, the paper's convention) the log-likelihood is −β n L_n + const, so the log
density is −n β L_n − ½‖w‖²/prior_std² + const.  The mask m ∈ {0, 1}^N selects the first n of
N rows (D_n ⊂ D_N), so one compiled log density serves every n of a sweep; β tempers the likelihood.
Data, mask and β are ``pm.Data`` containers: the sampling engine turns them into arguments.

The data are an **observed** random variable (``X_obs``, dims ``(obs, feature)``), so PyMC's
log-likelihood, ArviZ's WAIC/LOO and posterior predictive sampling work as for any PyMC model; the
tempering and the mask are one ``pm.Potential`` correction (:func:`observed_gaussian`).
"""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .. import _validate
from ..theory.potential import _potential
from ._pymc_compat import patch_blackjax_sampler, patch_posterior_predictive

# pm.sample(nuts_sampler="blackjax") on these models, with the blackjax we pin (see _pymc_compat)
patch_blackjax_sampler()
patch_posterior_predictive()  # pm.sample_posterior_predictive leaves the model usable (see _pymc_compat)

__all__ = ["tms_model", "tms_population_model", "observed_gaussian", "SIGMA_PAPER"]

#: σ = √(1/2): the Gaussian likelihood whose log is −n L_n + const (SPEC 2).
SIGMA_PAPER = math.sqrt(0.5)


def _mask(mask, N: int) -> np.ndarray:
    if mask is None:
        return np.ones(N)
    mask = _validate.finite_array("mask", mask)
    if mask.shape != (N,) or not np.all((mask == 0) | (mask == 1)):
        raise ValueError(
            f"mask must be a 0/1 vector of length N = {N} (rows of the data), got shape {mask.shape}"
        )
    if mask.sum() < 1:
        raise ValueError("mask must select at least one row (n >= 1)")
    return mask.astype(float)


def observed_gaussian(name: str, mu, sigma, data, mask, beta, dims):
    """Declare ``data ~ N(mu, σ²)`` as the observed variable ``name`` and temper it with a mask:

        Σ_kj log N(y_kj | μ_kj, σ²)              (observed: untempered, every row)
      + Σ_k (β m_k − 1) ℓ_k,  ℓ_k = Σ_j log N(y_kj | μ_kj, σ²)     (Potential "tempering")
      = β Σ_k m_k ℓ_k,

    the tempered likelihood of the selected rows, so ``model.logp()`` (what every sampler sees) is
    that of a ``pm.Potential`` likelihood, while the observed variable gives PyMC and ArviZ the
    pointwise, untempered log-likelihood ℓ_k (WAIC, LOO) and a predictive distribution.  At β = 1
    and no mask the correction is exactly 0."""
    obs = pm.Normal(name, mu=mu, sigma=sigma, observed=data, dims=dims)
    ell = pm.logp(
        pm.Normal.dist(mu=mu, sigma=sigma), data
    )  # a fresh node: the registered RV stays out of the Potential
    if ell.ndim == 2:
        ell = ell.sum(axis=1)
    pm.Potential("tempering", pt.sum((beta * mask - 1.0) * ell))
    return obs


def tms_model(
    X, *, r: int = 2, prior_std: float = 1.0, sigma: float = SIGMA_PAPER, beta: float = 1.0, mask=None
) -> pm.Model:
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
    coords = {"hidden": np.arange(r), "feature": np.arange(c), "obs": np.arange(N)}
    with pm.Model(coords=coords) as model:
        Xd = pm.Data("X", X, dims=("obs", "feature"))
        md = pm.Data("mask", _mask(mask, N), dims="obs")
        bd = pm.Data("beta", np.asarray(beta, dtype=float))
        W = pm.Normal("W", 0.0, prior_std, dims=("hidden", "feature"))
        b = pm.Normal("b", 0.0, prior_std, dims="feature")
        f = pt.maximum(pt.dot(Xd, pt.dot(W.T, W)) + b, 0.0)
        n = pt.sum(md)
        pm.Deterministic("L_n", pt.sum(md * pt.sum((Xd - f) ** 2, axis=1)) / n)
        observed_gaussian("X_obs", f, sigma, Xd, md, bd, ("obs", "feature"))
    model.tms_settings = {"model": "tms", "r": r, "c": c, "prior_std": prior_std, "sigma": sigma}
    return model


def tms_population_model(
    c: int, *, n: int, r: int = 2, prior_std: float = 1.0, beta: float = 1.0
) -> pm.Model:
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
    coords = {"hidden": np.arange(r), "feature": np.arange(c)}
    with pm.Model(coords=coords) as model:
        nd = pm.Data("n", np.asarray(float(n)))
        bd = pm.Data("beta", np.asarray(beta, dtype=float))
        W = pm.Normal("W", 0.0, prior_std, dims=("hidden", "feature"))
        b = pm.Normal("b", 0.0, prior_std, dims="feature")
        L = _potential(pt, W, b)
        pm.Deterministic("L_n", L)
        pm.Potential("loglik", -bd * nd * L)
    model.tms_settings = {
        "model": "tms-population",
        "r": r,
        "c": c,
        "prior_std": prior_std,
        "sigma": SIGMA_PAPER,
    }
    return model
