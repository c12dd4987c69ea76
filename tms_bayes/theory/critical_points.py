"""k-gon critical points of the TMS potential and their catalogue (SPEC 1.2).

A standard k-gon (r ≥ 2, embedded in the first two coordinates of R^r) has k columns
W_j = l·(cos(φ₀ + 2πj/k), sin(φ₀ + 2πj/k)) with a common bias b; the other c − k columns are zero
with a negative bias (a flat direction).  The optimal (l*, b*) minimise L over this two-parameter
family; they are found numerically here (:func:`optimal_radius_bias`), never tabulated.

Decorations, in the paper's notation k^{σ+,φ−}:

- σ+: a zero column with positive bias 1/(2c).  Its output is the constant b on every input, so its
  terms in c·L are (1/3 − b + b²) + (c − 1) b², minimised at b = 1/(2c), lowering L by 1/(4c²).  The
  point stays critical because the polygon's columns sum to zero.
- φ−: a polygon vertex switched off by a bias below −‖W_j‖², so feature j is never output.  Only at
  the 4-gon (l = 1, b = 0: vertices never interact) does this keep the point critical; the reading is
  inferred (SPEC 1.2) and yields the paper's count of 18 points at c = 6.

Learning coefficients: for k ≥ 5 the points are minimally singular and λ = rank(Hessian)/2
((3k − 1)/2 for a standard k-gon, + 3/2 per σ+ column) — provided the point is a local minimum.
A phase with a dead column is *not* a local minimum at the edge of its critical set
(:func:`metastable_exit`): its λ is that of a metastable set, which a sampler at large nβ sees
only while it stays inside.  A σ+
column beside a dead column is a saddle (the σ+ output's bias couples the two zero columns through the
bilinear term 2 b_s (W_s · W_d) μ), e.g. 5+ at c ≥ 7; there λ is reported unknown.  The 4-gon family
sits on kinks of L (not C²): its λ is not known in closed form and is reported as unknown (NaN with
``lambda_source="unknown"``).

c_α = ½‖w*‖², the −log density of the N(0, I) prior up to a constant shared by all phases.  Flat
coordinates (the bias of a dead column, the bias of a switched-off vertex) are free along a
half-line and count as 0, as in SPEC 1.2.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy import optimize

from .. import _validate
from .._jax import jax, jnp
from .potential import pack, potential, potential_grad, potential_hessian, potential_jax

__all__ = [
    "CriticalPoint",
    "kgon",
    "optimal_radius_bias",
    "parse_phase",
    "phase_name",
    "critical_points",
    "catalogue_phase_names",
    "metastable_exit",
]

#: An eigenvalue counts towards the Hessian's rank when |e| > max(RANK_RTOL·max|e|, RANK_ATOL).
RANK_RTOL = 1e-7
RANK_ATOL = 1e-9


@dataclass(frozen=True)
class CriticalPoint:
    """A k^{σ+,φ−} point: the weights, and what it is."""

    name: str
    k: int
    sigma: int
    phi: int
    W: np.ndarray  # (r, c)
    b: np.ndarray  # (c,)
    radius: float  # l*, the polygon's column norm
    bias: float  # b*, the polygon's common bias
    flat_mask: np.ndarray  # (rc + c,) True on coordinates that are flat half-lines (excluded from c_α)

    @property
    def r(self) -> int:
        return self.W.shape[0]

    @property
    def c(self) -> int:
        return self.W.shape[1]

    @property
    def loss(self) -> float:
        """L(w*) by the closed form."""
        return potential(self.W, self.b)

    @property
    def c_alpha(self) -> float:
        """c_α = ½‖w*‖² over the non-flat coordinates (module docstring)."""
        w = pack(self.W, self.b)
        return 0.5 * float(np.sum(w[~self.flat_mask] ** 2))


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------
_NAME = re.compile(r"^\s*(\d+)(\+*)(-*)\s*$")


def phase_name(k: int, sigma: int = 0, phi: int = 0) -> str:
    """The paper's label k^{σ+,φ−} in ASCII: ``"5+"``, ``"4++-"`` (SPEC 1.2)."""
    return f"{k}{'+' * sigma}{'-' * phi}"


def metastable_exit(phase: str, c: int) -> tuple[str, str] | None:
    """(target phase, exit direction) when ``phase``'s critical set is not a local minimum of L, else None.

    A k^{σ+,φ−} point with a dead column j (k + σ < c: the φ− columns are among the k) lies on a flat
    valley: L does not depend on b_j (nor, for k ≥ 5, on small W_j) while the column stays off.  At
    the valley's edge W_j = 0, b_j = 0 the column can turn on as a constant: with W_j = 0 and b_j = t > 0,
    output j is t on every input and only feature j's squared error changes, from E[x_j²] to
    E[(x_j − t)²], whose derivative −2 E[x_j] + 2t is negative at t = 0⁺ (E[x_j] > 0).  So L falls
    without a barrier along t ∈ (0, 1/(2c)] into k^{(σ+1)+,φ−} (by 1/(4c²) at t = 1/(2c), the σ+
    decoration above).  The k-gon's λ = rank/2 is then the λ of a critical set that is left
    through this edge; λ̂ there is metastable (it measures the set only while the sampler stays
    inside).  Points without a dead column return None."""
    k, sigma, phi = parse_phase(phase)
    c = _validate.integer("c", c, minimum=2)
    if k + sigma >= c:
        return None
    return (
        phase_name(k, sigma + 1, phi),
        "a dead column's bias b_j rising above 0 with W_j = 0 (the column turns on as a constant, σ+)",
    )


def parse_phase(name: str) -> tuple[int, int, int]:
    """``"4++-"`` → (k, σ, φ) = (4, 2, 1).  Accepts the Unicode minus (``"4++−"``)."""
    if not isinstance(name, str):
        raise ValueError(f"phase name must be a string like '5', '5+' or '4++-', got {name!r}")
    m = _NAME.match(name.replace("−", "-"))
    if m is None:
        raise ValueError(
            f"phase name {name!r} is not of the form k, then σ '+' signs, then φ '-' signs "
            "(e.g. '6', '5+', '4++-')"
        )
    return int(m.group(1)), len(m.group(2)), len(m.group(3))


# ---------------------------------------------------------------------------------------------
# The two-parameter problem
# ---------------------------------------------------------------------------------------------
def _polygon(k: int, radius, bias, *, r: int = 2, offset: float = 0.0, xp=np):
    angles = offset + 2.0 * np.pi * np.arange(k) / k
    unit = np.zeros((r, k))
    unit[0], unit[1] = np.cos(angles), np.sin(angles)
    return radius * xp.asarray(unit), bias * xp.ones(k)


@jax.jit
def _standard_kgon_loss_and_grad(params, unit):
    def f(p):
        return potential_jax(p[0] * unit, p[1] * jnp.ones(unit.shape[1]))

    return jax.value_and_grad(f)(params)


@functools.lru_cache(maxsize=None)
def optimal_radius_bias(k: int) -> tuple[float, float]:
    """(l*, b*) minimising L over standard k-gons with c = k (SPEC 1.2's table), by BFGS from
    several starts with exact JAX gradients.  The optimum does not depend on c: zero columns with
    negative bias add a constant to c·L."""
    k = _validate.integer("k", k, minimum=3)
    unit = jnp.asarray(_polygon(k, 1.0, 0.0)[0])

    def fun(p):
        v, g = _standard_kgon_loss_and_grad(jnp.asarray(p), unit)
        return float(v), np.asarray(g)

    best = None
    for start in ([1.0, 0.0], [1.0 + 0.15 * (k - 4), -0.3 * (k - 4)], [1.5, -1.0]):
        res = optimize.minimize(
            fun, np.asarray(start, float), jac=True, method="BFGS", options={"gtol": 1e-13, "maxiter": 1000}
        )
        if best is None or res.fun < best.fun - 1e-15:
            best = res
    radius, bias = (float(x) for x in best.x)
    return abs(radius), bias


# ---------------------------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------------------------
def kgon(
    k: int,
    c: int,
    *,
    r: int = 2,
    sigma: int = 0,
    phi: int = 0,
    offset: float = 0.0,
    dead_bias: float = -0.5,
    off_bias: float | None = None,
) -> CriticalPoint:
    """Build the critical point k^{σ+,φ−} in R^{r×c} (module docstring).

    Columns are laid out as: the k polygon vertices (the first ``phi`` switched off), then ``sigma``
    σ+ columns (bias 1/(2c)), then the c − k − σ dead columns (zero, bias ``dead_bias`` < 0).
    ``off_bias`` is the bias of switched-off vertices (default −2 l*², any value < −l*² works).
    ``offset`` rotates the polygon (an O(2) symmetry: L does not change).
    """
    c = _validate.integer("c", c, minimum=1)
    r = _validate.integer("r", r, minimum=1)
    if r < 2:
        raise ValueError(f"r must be >= 2 for a k-gon (a polygon needs a plane), got r={r}")
    k = _validate.integer("k", k, minimum=3, maximum=max(3, c))
    if k > c:
        raise ValueError(f"k must be in [3, c] = [3, {c}], got k={k}")
    sigma = _validate.integer("sigma", sigma, minimum=0)
    phi = _validate.integer("phi", phi, minimum=0)
    if k + sigma > c:
        raise ValueError(
            f"sigma must be in [0, c - k] = [0, {c - k}] (σ+ columns need zero columns), got sigma={sigma}"
        )
    if phi > k:
        raise ValueError(
            f"phi must be in [0, k] = [0, {k}] (φ− switches off polygon vertices), got phi={phi}"
        )
    if not (math.isfinite(dead_bias) and dead_bias < 0):
        raise ValueError(f"dead_bias must be a finite negative number (a dead column), got {dead_bias!r}")

    radius, bias = optimal_radius_bias(k)
    if off_bias is None:
        off_bias = -2.0 * radius**2
    if not (math.isfinite(off_bias) and off_bias < -(radius**2)):
        raise ValueError(
            f"off_bias must be < -l*² = {-(radius**2):.5f} to switch a vertex off, got {off_bias!r}"
        )

    W = np.zeros((r, c))
    b = np.full(c, float(dead_bias))
    Wp, bp = _polygon(k, radius, bias, r=r, offset=offset)
    W[:, :k], b[:k] = Wp, bp
    b[:phi] = off_bias
    b[k : k + sigma] = 1.0 / (2.0 * c)

    flat_b = np.zeros(c, dtype=bool)
    flat_b[:phi] = True  # switched-off vertices: bias free on (−∞, −l²)
    flat_b[k + sigma :] = True  # dead columns: bias free on (−∞, 0)
    flat_mask = np.concatenate([np.zeros(r * c, dtype=bool), flat_b])
    return CriticalPoint(phase_name(k, sigma, phi), k, sigma, phi, W, b, radius, bias, flat_mask)


# ---------------------------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------------------------
def catalogue_phase_names(c: int) -> list[str]:
    """Names of the catalogue's points at c (SPEC 1.2): k-gons for 5 ≤ k ≤ c with σ ≤ c − k, and the
    4-gon family 4^{σ+,φ−} with σ ≤ c − 4, φ ∈ {0..4}.  Ordered by k descending, then σ, then
    φ."""
    c = _validate.integer("c", c, minimum=4)
    names = [phase_name(k, s) for k in range(c, 4, -1) for s in range(c - k + 1)]
    names += [phase_name(4, s, p) for s in range(c - 4 + 1) for p in range(5)]
    return names


def critical_points(c: int = 6, r: int = 2) -> xr.Dataset:
    """The catalogue of low-loss k-gon critical points at (r, c) as a labelled table (dim ``phase``).

    Variables: k, sigma, phi, loss L(w*), grad_norm ‖∇L(w*)‖, hessian_eigenvalues (phase, param),
    hessian_rank, lambda_ (λ = rank/2 where theory gives it, else NaN), lambda_source ("theory" or
    "unknown"), c_alpha = ½‖w*‖², and the point itself W (phase, row, col), b (phase, col).
    18 points at c = 6.  For r > 2 the polygons are embedded in a plane and λ is left unknown (the
    minimal-singularity argument of SPEC 1.2 is for r = 2).
    """
    c = _validate.integer("c", c, minimum=1)
    r = _validate.integer("r", r, minimum=1)
    if c < 4:
        raise ValueError(
            f"c must be >= 4 for the k-gon catalogue (its smallest polygon is the 4-gon), got c={c}"
        )
    if r < 2:
        raise ValueError(f"r must be >= 2 for the k-gon catalogue (a polygon needs a plane), got r={r}")
    return _critical_points(c, r).copy(deep=True)


@functools.lru_cache(maxsize=16)
def _critical_points(c: int, r: int) -> xr.Dataset:
    names = catalogue_phase_names(c)
    d = r * c + c
    rows = {
        key: []
        for key in (
            "k",
            "sigma",
            "phi",
            "loss",
            "grad_norm",
            "rank",
            "neg",
            "lam",
            "src",
            "c_alpha",
            "eig",
            "W",
            "b",
        )
    }
    for name in names:
        k, s, p = parse_phase(name)
        pt = kgon(k, c, r=r, sigma=s, phi=p)
        gW, gb = potential_grad(pt.W, pt.b)
        eig = np.linalg.eigvalsh(potential_hessian(pt.W, pt.b))
        tol = max(RANK_RTOL * np.abs(eig).max(), RANK_ATOL)
        rank = int(np.sum(np.abs(eig) > tol))
        n_negative = int(np.sum(eig < -tol))
        # λ = rank/2 needs a minimally singular local minimum: k ≥ 5, r = 2, and no negative
        # curvature (a σ+ column beside dead columns couples to them bilinearly: a saddle).
        theory_known = k >= 5 and r == 2 and n_negative == 0
        rows["k"].append(k)
        rows["sigma"].append(s)
        rows["phi"].append(p)
        rows["loss"].append(pt.loss)
        rows["grad_norm"].append(float(np.sqrt(np.sum(gW**2) + np.sum(gb**2))))
        rows["rank"].append(rank)
        rows["neg"].append(n_negative)
        rows["lam"].append(rank / 2.0 if theory_known else np.nan)
        rows["src"].append("theory" if theory_known else "unknown")
        rows["c_alpha"].append(pt.c_alpha)
        rows["eig"].append(eig)
        rows["W"].append(pt.W)
        rows["b"].append(pt.b)

    ds = xr.Dataset(
        {
            "k": ("phase", np.array(rows["k"])),
            "sigma": ("phase", np.array(rows["sigma"])),
            "phi": ("phase", np.array(rows["phi"])),
            "loss": (
                "phase",
                np.array(rows["loss"]),
                {"long_name": "L(w*)", "formula": "closed-form TMS potential"},
            ),
            "grad_norm": ("phase", np.array(rows["grad_norm"]), {"long_name": "|grad L(w*)|"}),
            "hessian_rank": ("phase", np.array(rows["rank"]), {"rtol": RANK_RTOL, "atol": RANK_ATOL}),
            "hessian_negative": (
                "phase",
                np.array(rows["neg"]),
                {"long_name": "number of negative Hessian eigenvalues (saddle if > 0)"},
            ),
            "lambda_": (
                "phase",
                np.array(rows["lam"]),
                {
                    "long_name": "learning coefficient",
                    "formula": "rank(Hessian)/2 for minimally singular points; NaN = unknown",
                },
            ),
            "lambda_source": ("phase", np.array(rows["src"], dtype=object)),
            "c_alpha": (
                "phase",
                np.array(rows["c_alpha"]),
                {"formula": "0.5*|w*|^2 over non-flat coordinates"},
            ),
            "hessian_eigenvalues": (("phase", "param"), np.array(rows["eig"])),
            "W": (("phase", "hidden", "feature"), np.array(rows["W"])),
            "b": (("phase", "feature"), np.array(rows["b"])),
        },
        coords={"phase": names, "param": np.arange(d), "hidden": np.arange(r), "feature": np.arange(c)},
        attrs={
            "c": c,
            "r": r,
            "description": "k-gon critical points of the TMS potential (SPEC 1.2)",
            "lambda_note": "lambda_ is NaN where theory gives no value (4-gon family, r > 2): "
            "estimate it, never invent it",
        },
    )
    return ds
