"""Models whose learning coefficient λ is known, for validating λ̂ (SPEC 3).

Each builder follows the TMS model's conventions: data, padding mask and tempering β are
``pm.Data``; the responses are an observed variable (``y_obs``/``Y_obs``) tempered and masked by one
``pm.Potential`` (:func:`~tms_bayes.models.tms.observed_gaussian`); N(0, prior_std²) priors;
Gaussian noise σ = 1.

- :func:`regression_model`: y = ⟨w, x⟩ + ε, w ∈ R^d, true w ≠ 0 — regular, λ = d/2.
- :func:`normal_crossing_model`: y = x·∏ w_i^{k_i} + ε with truth w = 0 (y is noise) —
  λ = 1/(2 max k_i).
- :func:`reduced_rank_model`: Y = B A x + ε, A ∈ R^{H×N}, B ∈ R^{M×H}, true rank r —
  λ from Aoyagi & Watanabe (2005), :func:`rrr_learning_coefficient`.

For normal crossings with one or two parameters, :func:`normal_crossing_llc` gives the *exact*
finite-n value that λ̂ estimates on a given dataset (by quadrature), so an estimator can be tested
without the finite-n bias of λ̂ itself, and that bias can be measured.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .. import _validate
from .tms import _mask, observed_gaussian

__all__ = [
    "regression_model",
    "regression_log_evidence",
    "regression_tempered_energy",
    "normal_crossing_tempered_energy",
    "one_dim_model",
    "normal_crossing_model",
    "normal_crossing_llc",
    "reduced_rank_model",
    "rrr_learning_coefficient",
    "known_data",
]


def rrr_learning_coefficient(N: int, M: int, H: int, r: int) -> float:
    """λ of reduced-rank regression with input dim N, output dim M, hidden H, true rank r ≤ H
    (Aoyagi & Watanabe 2005, Theorem 1)."""
    N, M, H = (_validate.integer(k, v, minimum=1) for k, v in (("N", N), ("M", M), ("H", H)))
    r = _validate.integer("r", r, minimum=0, maximum=min(N, M, H))
    if N + r <= M + H and M + r <= N + H and H + r <= N + M:
        s = 2 * (H + r) * (N + M) - (N - M) ** 2 - (H + r) ** 2
        return (s + (1 if (N + M + H + r) % 2 else 0)) / 8.0
    if M + H < N + r:
        return (H * M - H * r + N * r) / 2.0
    if N + H < M + r:
        return (H * N - H * r + M * r) / 2.0
    return N * M / 2.0  # N + M < H + r


def regression_model(X, y, *, prior_std: float = 1.0, beta: float = 1.0, mask=None) -> pm.Model:
    """Linear regression y = ⟨w, x⟩ + N(0, 1): a regular model, λ = d/2."""
    X = _validate.finite_array("X", X)
    y = _validate.finite_array("y", y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    with pm.Model() as m:
        Xd, yd = pm.Data("X", X), pm.Data("y", y)
        md, bd = (
            pm.Data("mask", _mask(mask, len(y))),
            pm.Data("beta", np.asarray(_validate.positive("beta", beta))),
        )
        w = pm.Normal("w", 0.0, _validate.positive("prior_std", prior_std), shape=X.shape[1])
        observed_gaussian("y_obs", pt.dot(Xd, w), 1.0, yd, md, bd, None)
    return m


def regression_log_evidence(X, y, n: int | None = None, *, prior_std: float = 1.0) -> float:
    """Exact log Z_n of :func:`regression_model` (β = 1) on the first n rows: the marginal
    y_{1:n} ~ N(0, prior_std² X Xᵀ + I) (conjugate Gaussian)."""
    from scipy.stats import multivariate_normal

    X = _validate.finite_array("X", X)
    y = _validate.finite_array("y", y)
    n = len(y) if n is None else _validate.integer("n", n, minimum=1, maximum=len(y))
    s2 = _validate.positive("prior_std", prior_std) ** 2
    cov = s2 * X[:n] @ X[:n].T + np.eye(n)
    return float(multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(y[:n]))


def one_dim_model(K, *, n: float = 1.0, prior=(-2.0, 2.0)) -> pm.Model:
    """The one-dimensional example posterior φ(w) e^{−n K(w)} with φ uniform on ``prior`` (SPEC 5),
    n a data container (so SMC can temper it).  ``K`` must be written with arithmetic operators
    (it is applied to a pytensor variable), e.g. the examples of :mod:`tms_bayes.theory.one_dim`."""
    lo, hi = (float(v) for v in prior)
    if not lo < hi:
        raise ValueError(f"prior must be an interval (lo, hi) with lo < hi, got {prior}")
    with pm.Model() as m:
        nd = pm.Data("n", np.asarray(_validate.positive("n", n, strict=False)))
        w = pm.Uniform("w", lo, hi)
        pm.Potential("loglik", -nd * K(w))
    return m


def normal_crossing_model(x, y, k, *, prior_std: float = 1.0, beta: float = 1.0, mask=None) -> pm.Model:
    """y = x·∏ w_i^{k_i} + N(0, 1); at the truth w = 0 (y pure noise) λ = 1/(2 max k_i)."""
    x, y = _validate.finite_array("x", x), _validate.finite_array("y", y)
    k = [int(_validate.integer("k", v, minimum=1)) for v in k]
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {x.shape} and {y.shape}")
    with pm.Model() as m:
        xd, yd = pm.Data("x", x), pm.Data("y", y)
        md, bd = (
            pm.Data("mask", _mask(mask, len(y))),
            pm.Data("beta", np.asarray(_validate.positive("beta", beta))),
        )
        w = pm.Normal("w", 0.0, _validate.positive("prior_std", prior_std), shape=len(k))
        prod = pt.prod(pt.stack([w[i] ** k[i] for i in range(len(k))]))
        observed_gaussian("y_obs", xd * prod, 1.0, yd, md, bd, None)
    return m


def normal_crossing_llc(x, y, k, *, nbeta: float | None = None, gamma: float = 1.0) -> float:
    """The exact expectation that λ̂ estimates for :func:`normal_crossing_model` on the data (x, y)
    at w* = 0, for one or two parameters, by adaptive quadrature.

    With β = nβ/n, S_xx = Σx², S_xy = Σxy and f(w) = ∏ w_i^{k_i}, the tempered log-likelihood
    relative to w* = 0 is −g(w), g = β(S_xx f²/2 − S_xy f), and

        λ_n = ∫ g e^{−g − γ‖w‖²/2} dw / ∫ e^{−g − γ‖w‖²/2} dw
            = nβ (E[L_n(w)] − L_n(0)).

    λ_n → 1/(2 max k_i) as n → ∞ but slowly: the next pole of the zeta function gives corrections
    of order (nβ)^{-(1/(2k₂) − 1/(2k₁))}, and the data term S_xy contributes O(1/log n) with negative
    mean (the empirical minimum lies below L_n(0)).
    """
    from scipy import integrate

    x, y = _validate.finite_array("x", x), _validate.finite_array("y", y)
    k = [int(_validate.integer("k", v, minimum=1)) for v in k]
    if len(k) not in (1, 2):
        raise ValueError(f"normal_crossing_llc handles one or two parameters, got k = {k}")
    n = len(x)
    nbeta = n / math.log(n) if nbeta is None else _validate.positive("nbeta", nbeta)
    gamma = _validate.positive("gamma", gamma)
    beta = nbeta / n
    A, B = beta * float(np.sum(x * x)) / 2.0, beta * float(np.sum(x * y))
    edge = 12.0 / math.sqrt(gamma)  # the localisation makes mass beyond 12 standard deviations negligible

    def pieces(scale):
        s = min(max(scale, 1e-12), edge / 2)
        return [(-edge, -s), (-s, 0.0), (0.0, s), (s, edge)]

    def integrate_1d(fun, scale):
        return sum(
            integrate.quad(fun, lo, hi, limit=200, epsabs=0.0, epsrel=1e-10)[0] for lo, hi in pieces(scale)
        )

    def weight(f, sq, moment):
        g = A * f * f - B * f
        e = math.exp(-g - 0.5 * gamma * sq)
        return g * e if moment else e

    def over_w1(w2, moment):
        if len(k) == 1:
            return weight(w2 ** k[0], w2 * w2, moment)
        c2 = w2 ** k[1]
        scale = (A**-0.5 / max(abs(c2), 1e-300)) ** (1.0 / k[0])  # where g ≈ 1 along w1
        return integrate_1d(lambda w1: weight(w1 ** k[0] * c2, w1 * w1 + w2 * w2, moment), scale)

    outer_scale = A ** (-0.5 / k[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        num = integrate_1d(lambda w: over_w1(w, True), outer_scale)
        den = integrate_1d(lambda w: over_w1(w, False), outer_scale)
    return num / den


def reduced_rank_model(X, Y, *, H: int, prior_std: float = 1.0, beta: float = 1.0, mask=None) -> pm.Model:
    """Y = B A x + N(0, I): A (H, N), B (M, H)."""
    X, Y = _validate.finite_array("X", X), _validate.finite_array("Y", Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (n, N) and Y (n, M), got {X.shape} and {Y.shape}")
    H = _validate.integer("H", H, minimum=1)
    with pm.Model() as m:
        Xd, Yd = pm.Data("X", X), pm.Data("Y", Y)
        md, bd = (
            pm.Data("mask", _mask(mask, len(Y))),
            pm.Data("beta", np.asarray(_validate.positive("beta", beta))),
        )
        A = pm.Normal("A", 0.0, prior_std, shape=(H, X.shape[1]))
        B = pm.Normal("B", 0.0, prior_std, shape=(Y.shape[1], H))
        observed_gaussian("Y_obs", pt.dot(pt.dot(Xd, A.T), B.T), 1.0, Yd, md, bd, None)
    return m


def known_data(kind: str, n: int, seed: int = 0, **kw):
    """Data and the true parameter for the known-λ models.

    kind="regression" (d), "normal_crossing" (no parameters: y is noise), "rrr" (N, M, H, r).
    Returns (data dict for the builder, true parameter dict)."""
    rng = np.random.default_rng(_validate.integer("seed", seed, minimum=0))
    n = _validate.integer("n", n, minimum=1)
    if kind == "regression":
        d = kw.get("d", 3)
        w0 = rng.normal(size=d)
        X = rng.normal(size=(n, d))
        return {"X": X, "y": X @ w0 + rng.normal(size=n)}, {"w": w0}
    if kind == "normal_crossing":
        x = rng.normal(size=n)
        return {"x": x, "y": rng.normal(size=n)}, {"w": np.zeros(len(kw.get("k", (1, 1))))}
    if kind == "rrr":
        N, M, H, r = kw["N"], kw["M"], kw["H"], kw["r"]
        A0 = np.zeros((H, N))
        B0 = np.zeros((M, H))
        A0[:r] = rng.normal(size=(r, N))
        B0[:, :r] = rng.normal(size=(M, r))
        X = rng.normal(size=(n, N))
        return {"X": X, "Y": X @ A0.T @ B0.T + rng.normal(size=(n, M))}, {"A": A0, "B": B0}
    raise ValueError(f"kind must be one of regression, normal_crossing, rrr; got {kind!r}")


def regression_tempered_energy(X, y, beta: float, *, prior_std: float = 1.0) -> float:
    """Exact E_β[n L_n(w)] of :func:`regression_model` (all rows),
    n L_n(w) = −Σ_k log N(y_k | ⟨w, x_k⟩, 1): the tempered posterior is N(m, P⁻¹),
    P = βXᵀX + I/prior_std², m = βP⁻¹Xᵀy, so

        E_β[n L_n] = ½‖y − Xm‖² + ½ tr(XᵀX P⁻¹) + (n/2) log 2π.

    At β = 1/log n this is the exact value WBIC estimates (Watanabe 2013)."""
    X, y = _validate.finite_array("X", X), _validate.finite_array("y", y)
    beta = _validate.positive("beta", beta)
    XtX = X.T @ X
    P = beta * XtX + np.eye(X.shape[1]) / _validate.positive("prior_std", prior_std) ** 2
    Pinv = np.linalg.inv(P)
    m = beta * Pinv @ X.T @ y
    return float(
        0.5 * np.sum((y - X @ m) ** 2) + 0.5 * np.trace(XtX @ Pinv) + 0.5 * len(y) * math.log(2 * math.pi)
    )


def normal_crossing_tempered_energy(x, y, k, beta: float, *, prior_std: float = 1.0) -> float:
    """Exact E_β[n L_n(w)] of :func:`normal_crossing_model` (all rows, one or two parameters), by the
    quadrature of :func:`normal_crossing_llc`: with g(w) = β(S_xx f²/2 − S_xy f), f = ∏ w_i^{k_i},
    n L_n(w) = Σy²/2 + (n/2) log 2π + g(w)/β, and the tempered posterior
    ∝ e^{−g − ‖w‖²/(2 prior_std²)}."""
    x, y = _validate.finite_array("x", x), _validate.finite_array("y", y)
    beta = _validate.positive("beta", beta)
    g = normal_crossing_llc(
        x, y, k, nbeta=len(x) * beta, gamma=1.0 / _validate.positive("prior_std", prior_std) ** 2
    )
    return float(0.5 * np.sum(y * y) + 0.5 * len(y) * math.log(2 * math.pi) + g / beta)
