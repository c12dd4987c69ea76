"""One-dimensional K(w) examples of phases and phase transitions (SPEC 5; DSLT 2 and 4).

Uniform prior φ = 1/4 on [−2, 2]; the local free energy of a window W = [lo, hi] is

    F_n(W) = −log ∫_W φ(w) e^{−n K(w)} dw,

computed by adaptive quadrature with the minimum factored out
(F = n K_min − log ∫ φ e^{−n(K − K_min)}), so it stays accurate for n up to 1e8.  Asymptotically
F_n(W) ≈ n K(w*) + λ log n + O(1), with λ the learning coefficient of the minimum in W: 1/2 for a
quadratic minimum, 1/(2p) for K ~ (w − w*)^{2p}.

Three examples:

- :func:`two_singularities`: K = (w + 1)²(w − 1)⁴, a regular minimum at −1 (λ = 1/2) and a degenerate
  one at +1 (λ = 1/4), both true (K = 0).  The degenerate one's free energy grows more slowly.
- :func:`first_order_example`: K = min((w + 1)², K₀ + a (w − 1)⁴), a true quadratic minimum at −1
  beside a broad, flat non-true minimum at +1 with K = K₀ (default 0.1).  At small n the flat phase
  has the lower free energy (complexity wins), at large n the true one (accuracy wins): a first-order
  transition in n, at the n where the two F curves cross.  This K is tms-bayes's construction of the
  example SPEC 5 describes (the source's formula is not preserved); K₀ and a are parameters.
- :func:`merge_example`: K_θ = (w + 1 − θ)²(w − 1 + θ)⁴ with windows ±0.5 around each minimum; at
  θ = 1 the two minima merge into K = w⁶ (λ = 1/6): a second-order transition in θ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy import integrate, optimize

from .. import _validate

__all__ = [
    "OneDimExample",
    "PRIOR_INTERVAL",
    "local_free_energy",
    "two_singularities",
    "first_order_example",
    "merge_example",
    "free_energy_curves",
    "merge_curves",
    "first_order_crossover",
]

#: The uniform prior's support (SPEC 5).
PRIOR_INTERVAL = (-2.0, 2.0)


@dataclass(frozen=True)
class OneDimExample:
    """A one-dimensional K with named phases: windows, minima and their learning coefficients."""

    name: str
    K: Callable[[np.ndarray], np.ndarray]
    windows: dict[str, tuple[float, float]]
    minima: dict[str, float]
    lambdas: dict[str, float]
    params: dict[str, float] = field(default_factory=dict)

    @property
    def phases(self) -> list[str]:
        return list(self.windows)


def local_free_energy(
    K: Callable, window: tuple[float, float], n: float, *, prior=PRIOR_INTERVAL, minimum: float | None = None
) -> float:
    """F_n(W) = −log ∫_W φ(w) e^{−n K(w)} dw for the uniform prior φ on ``prior`` (module docstring).

    ``minimum`` is where K is smallest in the window (found numerically when not given); quadrature
    splits there so that sharp peaks at large n are resolved.
    """
    n = _validate.positive("n", n)
    lo, hi = (float(x) for x in window)
    plo, phi_ = (float(x) for x in prior)
    if not (plo <= lo < hi <= phi_):
        raise ValueError(f"window must satisfy {plo} <= lo < hi <= {phi_} (inside the prior), got {window}")
    if minimum is None:
        grid = np.linspace(lo, hi, 4001)
        i = int(np.argmin(K(grid)))
        res = optimize.minimize_scalar(
            K,
            bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
            method="bounded",
            options={"xatol": 1e-12},
        )
        minimum = float(res.x)
    k_min = float(K(np.asarray(minimum)))
    density = 1.0 / (phi_ - plo)

    def integrand(w):
        return math.exp(-n * (float(K(np.asarray(w))) - k_min))

    # Split around the minimum at multiples of the narrowest peak width (n^{-1/2}) so quad resolves it.
    scales = n**-0.5 * np.array([1.0, 4.0, 16.0, 64.0])
    pts = sorted({p for p in (minimum, *(minimum - scales), *(minimum + scales)) if lo < p < hi})
    edges = [lo, *pts, hi]
    total = sum(
        integrate.quad(integrand, a, b, limit=500, epsabs=0.0, epsrel=1e-11)[0]
        for a, b in zip(edges[:-1], edges[1:])
        if b > a
    )
    return n * k_min - math.log(density * total)


def two_singularities() -> OneDimExample:
    """K = (w + 1)²(w − 1)⁴: regular minimum at −1 (λ = 1/2), degenerate at +1 (λ = 1/4)."""
    return OneDimExample(
        name="two_singularities",
        K=lambda w: (w + 1.0) ** 2 * (w - 1.0) ** 4,
        windows={"regular": (-2.0, 0.0), "degenerate": (0.0, 2.0)},
        minima={"regular": -1.0, "degenerate": 1.0},
        lambdas={"regular": 0.5, "degenerate": 0.25},
    )


def first_order_example(K0: float = 0.1, a: float = 0.1) -> OneDimExample:
    """K = min((w + 1)², K₀ + a (w − 1)⁴): true quadratic minimum at −1, flat non-true one (K = K₀)
    at +1."""
    K0 = _validate.positive("K0", K0)
    a = _validate.positive("a", a)
    return OneDimExample(
        name="first_order",
        K=lambda w: np.minimum((w + 1.0) ** 2, K0 + a * (w - 1.0) ** 4),
        windows={"true": (-2.0, 0.0), "flat": (0.0, 2.0)},
        minima={"true": -1.0, "flat": 1.0},
        lambdas={"true": 0.5, "flat": 0.25},
        params={"K0": K0, "a": a},
    )


def merge_example(theta: float) -> OneDimExample:
    """K_θ = (w + 1 − θ)²(w − 1 + θ)⁴, windows ±0.5 around each minimum; the minima merge at
    θ = 1."""
    theta = float(theta)
    if not (math.isfinite(theta) and 0.0 <= theta <= 1.0):
        raise ValueError(f"theta must be in [0, 1] (θ = 1 is the merge), got {theta!r}")
    left, right = -1.0 + theta, 1.0 - theta
    return OneDimExample(
        name="merge",
        K=lambda w: (w + 1.0 - theta) ** 2 * (w - 1.0 + theta) ** 4,
        windows={"left": (left - 0.5, left + 0.5), "right": (right - 0.5, right + 0.5)},
        minima={"left": left, "right": right},
        lambdas={"left": 0.5, "right": 0.25} if theta < 1 else {"left": 1.0 / 6.0, "right": 1.0 / 6.0},
        params={"theta": theta},
    )


def free_energy_curves(example: OneDimExample, n) -> xr.DataArray:
    """F_n(W_α) for each phase of ``example`` and each n, as a DataArray (n, phase)."""
    n = _validate.sample_sizes("n", n)
    F = np.array(
        [
            [
                local_free_energy(example.K, example.windows[p], float(m), minimum=example.minima[p])
                for p in example.phases
            ]
            for m in n
        ]
    )
    return xr.DataArray(
        F,
        dims=("n", "phase"),
        coords={
            "n": n,
            "phase": example.phases,
            "lambda_": ("phase", [example.lambdas[p] for p in example.phases]),
        },
        name="free_energy",
        attrs={
            "example": example.name,
            "prior": "uniform on [-2, 2]",
            **{f"param_{k}": v for k, v in example.params.items()},
        },
    )


def merge_curves(thetas, n: float = 10.0) -> xr.DataArray:
    """F_n of the left and right windows of :func:`merge_example` against θ at fixed n (default 10)."""
    thetas = np.atleast_1d(np.asarray(thetas, dtype=float))
    n = _validate.positive("n", n)
    rows = []
    for th in thetas:
        ex = merge_example(th)
        rows.append(
            [local_free_energy(ex.K, ex.windows[p], n, minimum=ex.minima[p]) for p in ("left", "right")]
        )
    return xr.DataArray(
        np.array(rows),
        dims=("theta", "phase"),
        coords={"theta": thetas, "phase": ["left", "right"]},
        name="free_energy",
        attrs={"example": "merge", "n": n},
    )


def first_order_crossover(example: OneDimExample | None = None, *, n_max: float = 1e6) -> float:
    """The n at which the two phases' free energies of ``example`` (default :func:`first_order_example`)
    cross, by root finding in log n on the quadrature free energies; ``nan`` if they do not cross."""
    ex = example or first_order_example()
    p, q = ex.phases

    def g(t):
        m = math.exp(t)
        return local_free_energy(ex.K, ex.windows[p], m, minimum=ex.minima[p]) - local_free_energy(
            ex.K, ex.windows[q], m, minimum=ex.minima[q]
        )

    ts = np.linspace(0.0, math.log(n_max), 60)
    gs = np.array([g(t) for t in ts])
    idx = np.nonzero(np.sign(gs[:-1]) * np.sign(gs[1:]) < 0)[0]
    if idx.size == 0:
        return math.nan
    i = idx[-1]
    return math.exp(optimize.brentq(g, ts[i], ts[i + 1], xtol=1e-10))
