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
    "one_nonzero_per_row",
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
    if one_nonzero_per_row(X):  # every TMS dataset (tms_inputs): the engine may use the sorted form
        model.sufficient_likelihood = _sorted_likelihood(model, Xd, md, bd, W, b, sigma)
    model.tms_settings = {"model": "tms", "r": r, "c": c, "prior_std": prior_std, "sigma": sigma}
    if gauge != "none":
        model.tms_settings["gauge"] = gauge
    return model


def one_nonzero_per_row(X) -> bool:
    """Whether every row of ``X`` (..., N, c) has at most one non-zero entry (TMS inputs x = μ e_i)."""
    X = np.asarray(X)
    return X.ndim >= 2 and bool(np.all(np.count_nonzero(X, axis=-1) <= 1))


def _check_one_nonzero(data: dict) -> None:
    if "X" in data and not one_nonzero_per_row(data["X"]):
        raise ValueError(
            "X must have at most one non-zero entry per row: this model's compiled log density uses the "
            "sorted form of the TMS likelihood (inputs x = μ e_i); for other inputs build "
            "tms_model(X) on them"
        )


def _sorted_likelihood(model: pm.Model, Xd, md, bd, W, b, sigma: float) -> dict:
    """The tempered log-likelihood β Σ_k m_k Σ_j log N(x_kj | f_j(x_k), σ²) of inputs with one
    non-zero entry per row (x_k = μ_k e_{i_k}), in O(c² log N) per evaluation instead of O(N c²).

    For a row of feature i, f_j = ReLU(μ a_ij + b_j) with a = WᵀW, so the row's squared error is
    Σ_j (μ δ_ij − ReLU(μ a_ij + b_j))².  Term (i, j) is active (the ReLU passes) on the rows of feature i
    with μ a_ij + b_j > 0 — for a_ij > 0 those with μ above t_ij = −b_j / a_ij, for a_ij < 0 those
    below it (for a_ij = 0 all rows or none, by the sign of b_j) — and on the active set A_ij

        Σ_{k ∈ A} m_k (μ_k e_ij − b_j)² = e_ij² S₂ − 2 e_ij b_j S₁ + b_j² S₀,   e_ij = δ_ij − a_ij,

    with S_r = Σ_{k ∈ A} m_k μ_k^r; an inactive row adds δ_ij μ_k².  With the rows of each feature
    sorted by μ, S_r is a difference of prefix sums at the position of t_ij (one binary search).  So

        log-lik = −β/(2σ²) Σ_ij [e_ij² S₂ − 2 e_ij b_j S₁ + b_j² S₀ + δ_ij (S₂^all − S₂)]
                  − β (Σ_k m_k) (c/2) log(2πσ²),

    exactly the per-row sum (``tests/test_models.py`` checks value and gradient against the PyMC
    model's own ``logp``).  An all-zero row is a row of feature 0 with μ = 0 (its error Σ_j ReLU(b_j)²
    is what the formula gives).  The sorted prefix sums depend on the data and the mask only: the
    engine computes them once per data (``CompiledModel.logdensity``), outside its sampling loops.

    Returns what :func:`~tms_bayes.inference.compile.compile_model` reads: ``stats`` (graphs of the
    data: the sorted μ (c, N) and the prefix sums P_r (c, N + 1)), ``loglik`` (a function of symbolic
    stats giving the log-likelihood graph), ``replaces`` (the model terms it equals) and
    ``check_data`` (refuses data that break the one-non-zero assumption)."""
    c = len(model.coords["feature"])
    feature = pt.argmax(pt.abs(Xd), axis=1)
    mu = pt.sum(Xd, axis=1)
    own = pt.eq(feature[None, :], pt.arange(c)[:, None])  # (c, N): row k belongs to feature i
    vals = pt.switch(own, mu[None, :], 0.0)
    weights = pt.switch(own, md[None, :], 0.0)
    order = pt.argsort(vals, axis=1)
    v = pt.take_along_axis(vals, order, axis=1)
    w = pt.take_along_axis(weights, order, axis=1)
    zero = pt.zeros((c, 1))
    prefix = [pt.concatenate([zero, pt.cumsum(w * v**r, axis=1)], axis=1) for r in range(3)]
    # one sorted array for all features: feature i's μ shifted by i·3M (M > every |μ|), so that a single
    # binary search places every threshold of every feature (one op, not c)
    M = pt.max(pt.abs(v)) + 1.0
    keyed = (v + (3.0 * M) * pt.arange(c)[:, None]).ravel()

    def loglik(keyed, M, P0, P1, P2):
        a = pt.dot(W.T, W)
        B = pt.ones((c, 1)) * b[None, :]
        flat = pt.eq(a, 0.0)
        t = pt.switch(flat, pt.switch(pt.gt(B, 0.0), np.inf, -np.inf), -B / pt.switch(flat, 1.0, a))
        N = P0.shape[1] - 1
        shift = (3.0 * M) * pt.arange(c)[:, None]  # thresholds clipped to [−M, M] keep their order
        flat_pos = pt.extra_ops.searchsorted(keyed, (pt.clip(t, -M, M) + shift).ravel(), side="left")
        pos = flat_pos.reshape((c, c)) - N * pt.arange(c)[:, None]
        up = pt.gt(a, 0.0)  # active above t (else below: a < 0, or a = 0 with t = ±∞)

        def active(P):
            at = pt.take_along_axis(P, pos, axis=1)
            return pt.switch(up, P[:, -1][:, None] - at, at)

        S0, S1, S2 = active(P0), active(P1), active(P2)
        e = pt.eye(c) - a
        sq = e**2 * S2 - 2.0 * e * B * S1 + B**2 * S0 + pt.eye(c) * (P2[:, -1][:, None] - S2)
        n = pt.sum(P0[:, -1])
        return bd * (-pt.sum(sq) / (2.0 * sigma**2) - n * c * 0.5 * math.log(2.0 * math.pi * sigma**2))

    return {
        "stats": [keyed, M, *prefix],
        "loglik": loglik,
        "replaces": ("X_obs", "tempering"),
        "check_data": _check_one_nonzero,
    }


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
