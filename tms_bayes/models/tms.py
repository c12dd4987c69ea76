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
from .._options import GAUGES
from ..theory.potential import _potential
from ._pymc_compat import patch_blackjax_sampler, patch_posterior_predictive

# pm.sample(nuts_sampler="blackjax") on these models, with the blackjax we pin (see _pymc_compat)
patch_blackjax_sampler()
patch_posterior_predictive()  # pm.sample_posterior_predictive leaves the model usable (see _pymc_compat)

__all__ = [
    "tms_model",
    "tms_population_model",
    "observed_gaussian",
    "SIGMA_PAPER",
    "GAUGES",
    "gauge_weights",
    "gauge_basis",
    "to_gauge",
]

#: σ = √(1/2): the Gaussian likelihood whose log is −n L_n + const (SPEC 2).
SIGMA_PAPER = math.sqrt(0.5)


def gauge_weights(c: int) -> np.ndarray:
    """The unit vector e ∝ (1, 2, 4, …, 2^{c−1}) whose W-image the SO(2) gauge puts on the positive x-axis.

    The gauge is singular only where W e = Σ_j e_j w_j = 0.  Geometric weights keep that set away from
    every k-gon: with the alive columns at equal norm ρ on a regular k-gon, the largest alive weight
    outweighs all smaller ones together (2^m > 2^m − 1), so |W e| > 0 for every choice of alive
    columns and every order round the polygon.  For c = 6 the worst case over all orders and dead
    columns is |W e| = 0.11 ρ (4-gon), 0.20 ρ (5-gon), 0.32 ρ (6-gon), where "the first column on the
    x-axis" (e = (1, 0, …)) gives 0 for every 4- and 5-gon whose first column is dead
    (``tests/test_gauge.py`` checks these figures)."""
    c = _validate.integer("c", c, minimum=2)
    a = 2.0 ** np.arange(c)
    return a / np.linalg.norm(a)


def gauge_basis(c: int) -> np.ndarray:
    """An orthonormal basis B (c, c − 1) of the complement of :func:`gauge_weights` (from a QR
    factorisation of [e, I_{:, :c−1}]: deterministic, so every run uses the same B)."""
    e = gauge_weights(c)
    q, _ = np.linalg.qr(np.column_stack([e, np.eye(c)[:, : c - 1]]))
    return q[:, 1:]


def to_gauge(W) -> tuple[np.ndarray, np.ndarray]:
    """Gauge coordinates (ρ, Y) of W (..., 2, c): rotate W so that W e lies on the positive x-axis,
    then ρ = |W e| and Y = (rotated W) B (..., 2, c − 1).  :func:`tms_model` with ``gauge="so2"`` maps
    them back by W = [ρ eᵀ + Y₀ Bᵀ ; Y₁ Bᵀ]; every SO(2)-invariant quantity of W is unchanged."""
    W = np.asarray(W, dtype=float)
    if W.ndim < 2 or W.shape[-2] != 2:
        raise ValueError(f"W must have shape (..., 2, c) (the SO(2) gauge needs r = 2), got {W.shape}")
    c = W.shape[-1]
    e, B = gauge_weights(c), gauge_basis(c)
    u = W @ e  # (..., 2): the gauge vector
    rho = np.hypot(u[..., 0], u[..., 1])
    cos, sin = u[..., 0] / rho, u[..., 1] / rho
    R = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # rotation by −arg(u)
    return rho, (R @ W) @ B


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
    X,
    *,
    r: int = 2,
    prior_std: float = 1.0,
    sigma: float = SIGMA_PAPER,
    beta: float = 1.0,
    mask=None,
    gauge: str = "none",
) -> pm.Model:
    """Build the TMS posterior for inputs ``X`` (N, c) (module docstring).

    ``mask`` (N,) of 0/1 selects the rows in D_n (default: all); ``beta`` tempers the likelihood.
    The model records L_n (over the selected rows) as the Deterministic ``L_n``.

    ``gauge="so2"`` (r = 2 only) samples the quotient of the posterior by its rotation symmetry
    instead of W itself; W is then the Deterministic ``W`` and every quantity invariant under
    W ↦ R W, R ∈ SO(2) (L_n, WᵀW, column norms, k-gon phase labels, the likelihood) has exactly the
    distribution it has under ``gauge="none"``.  Free variables: ρ = ``gauge_rho`` > 0,
    Y = ``gauge_Y`` (2, c − 1), and

        W(ρ, Y) = [ρ eᵀ + Y₀ Bᵀ ; Y₁ Bᵀ],   e = :func:`gauge_weights`, B = :func:`gauge_basis`,
        ρ ~ Rayleigh(prior_std) (= Weibull(2, √2 prior_std)),   Y ~ N(0, prior_std²).

    *Proof of exactness.*  Identify each column w_j ∈ ℝ² with z_j ∈ ℂ; a rotation is z ↦ e^{iφ} z.
    [e, B] is an orthonormal basis of ℝ^c, so z ↦ (u, y) = (Σ_j e_j z_j, Bᵀz) is unitary on ℂ^c:
    Lebesgue measure is preserved and ‖W‖² = |u|² + ‖y‖².  In polar form u = ρ e^{iφ},
    dz = ρ dρ dφ dy.  For a rotation-invariant integrand g (the posterior density p(W) ∝
    exp(−‖W‖²/2 prior_std²) · likelihood(WᵀW) times any invariant f), rotating by −φ (which maps y to
    e^{−iφ} y, a measure-preserving map) gives ∫ g dz = 2π ∫∫ g(W(ρ, y)) ρ dρ dy.  Hence the
    distribution of W(ρ, Y) under the density ∝ ρ exp(−(ρ² + ‖Y‖²)/2 prior_std²) · likelihood(W(ρ, Y)) —
    this model — gives every invariant f the same expectation as the unfixed posterior, and its
    normalising constant (the evidence) is the same, because the Rayleigh × Gaussian prior is the
    unfixed prior's image.  The reflection (the second row's sign) is not fixed: quantities that are
    rotation-invariant but change sign under it (signed angles, the cyclic order of the columns) keep
    the symmetric distribution they have under the unfixed posterior, which has the same symmetry.
    The gauge is singular only on {W e = 0} (:func:`gauge_weights`: no regular k-gon lies there), where
    ρ → 0 and the density vanishes like ρ.
    """
    X = _validate.finite_array("X", X, ndim_min=2)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have shape (N, c) with N >= 1 and c >= 1, got {X.shape}")
    r = _validate.integer("r", r, minimum=1)
    prior_std = _validate.positive("prior_std", prior_std)
    sigma = _validate.positive("sigma", sigma)
    beta = _validate.positive("beta", beta)
    N, c = X.shape
    _validate.choice("gauge", gauge, GAUGES)
    if gauge == "so2" and (r != 2 or c < 2):
        raise ValueError(f"gauge='so2' needs r = 2 and c >= 2 (W in ℝ^{{2×c}}), got r = {r}, c = {c}")
    coords = {"hidden": np.arange(r), "feature": np.arange(c), "obs": np.arange(N)}
    if gauge == "so2":
        coords["gauge_dim"] = np.arange(c - 1)
    with pm.Model(coords=coords) as model:
        Xd = pm.Data("X", X, dims=("obs", "feature"))
        md = pm.Data("mask", _mask(mask, N), dims="obs")
        bd = pm.Data("beta", np.asarray(beta, dtype=float))
        W = _weights(prior_std, r, gauge)
        b = pm.Normal("b", 0.0, prior_std, dims="feature")
        f = pt.maximum(pt.dot(Xd, pt.dot(W.T, W)) + b, 0.0)
        n = pt.sum(md)
        pm.Deterministic("L_n", pt.sum(md * pt.sum((Xd - f) ** 2, axis=1)) / n)
        observed_gaussian("X_obs", f, sigma, Xd, md, bd, ("obs", "feature"))
    model.tms_settings = {"model": "tms", "r": r, "c": c, "prior_std": prior_std, "sigma": sigma}
    if gauge != "none":
        model.tms_settings["gauge"] = gauge
    return model


def _weights(prior_std: float, r: int, gauge: str):
    """W (r × c) in the current model: a free Normal, or the Deterministic of the SO(2) gauge."""
    if gauge == "none":
        return pm.Normal("W", 0.0, prior_std, dims=("hidden", "feature"))
    c = len(pm.modelcontext(None).coords["feature"])
    e, B = gauge_weights(c), gauge_basis(c)
    rho = pm.Weibull("gauge_rho", alpha=2.0, beta=math.sqrt(2.0) * prior_std)  # Rayleigh(prior_std)
    Y = pm.Normal("gauge_Y", 0.0, prior_std, dims=("hidden", "gauge_dim"))
    return pm.Deterministic(
        "W", pt.stack([rho * e + pt.dot(Y[0], B.T), pt.dot(Y[1], B.T)]), dims=("hidden", "feature")
    )


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
