"""Critical configurations of the two-layer ReLU truth/model pairs (SPEC 5), from the population loss.

Model and truth are f(x; w, b, q, c) = Σ_a q_a ReLU(⟨w_a, x⟩ + b_a) + c on x ~ U([−1, 1]²).  With
Gaussian noise of variance 1 the KL divergence is K(w) = ½ E_x[(f(x; w) − f(x; w⁰))²]; this module
works with the population loss

    L(w) = E_x[(f(x; w) − f(x; w⁰))²] = 2 K(w),

evaluated on a midpoint grid of ``grid``² points of the square (a deterministic quadrature: f is
piecewise linear, so the error is O(grid⁻²) from the cells cut by activation boundaries).

A *configuration* is a local minimum of L in the model's parameter space, reported by its effective
weights ŵ_a = |q_a| w_a (the scaling symmetry w_a → αw_a, b_a → αb_a, q_a → q_a/α, α > 0, leaves f
and ŵ unchanged).  Each phase of the experiments is a neighbourhood of one such configuration:

- **PT1, non-degenerate**: the truth itself (L = 0).
- **PT1, degenerate**: one node carries everything, the other is dead (ŵ = 0).  Its best version is
  the minimum of L over one-node networks (w, b, q, c) started at the θ = π/2 solution ŵ = (0, 2),
  b = −0.3, q = 2 (exact there: the two true nodes coincide).  For θ < π/2 it is not a true parameter:
  L > 0, and the gap L_deg(θ) is the accuracy the degenerate phase gives up.
- **PT2, non-annihilation**: the truth (L = 0).
- **PT2, annihilation**: the orientation-reversed network.  ReLU(z) = ReLU(−z) + z, so
  Σ_a q_a ReLU(⟨w_a, x⟩ + b_a) = Σ_a q_a ReLU(⟨−w_a, x⟩ − b_a) + ⟨Σ_a q_a w_a, x⟩ + Σ_a q_a b_a:
  reversing every node and adding Σ q_a b_a to c is exact when Σ_a q_a w_a = 0 (ϑ = 1).  For ϑ > 1 the
  linear term (ϑ − 1)⟨(−1, 0), x⟩ is missing; the configuration is the local minimum of L reached from
  the reversed network.  Measured (grid 200): it stays a separate local minimum up to ϑ = 3 at least,
  but it *moves*: D from the reversed weights with the ϑ-node scaled (the centre of the published
  annihilation ball) is 0.31 at ϑ = 1.5, 0.60 at 2.0, 0.88 at 2.5 — it leaves an ε = 0.25 ball around
  that centre near ϑ ≈ 1.4, while its loss L grows (0.0009, 0.0031, 0.0061).  If it slides back to
  the truth (D to the truth < ``merge_distance``) it is reported as not existing.

Distances between configurations are taken up to node permutation and node-wise, as the phases
are: D(ŵ, ŵ') = min_π max_a ‖ŵ_π(a) − ŵ'_a‖.

**Free-energy estimate of θ_c (PT1).**  With the tempered likelihood (nβ = n/log n) the free energy of
a phase is F ≈ nβ·K + λ log(nβ).  With Watanabe's bound for ReLU networks (λ ≤ half the parameters of
the smallest network representing the function: 9/2 non-degenerate, 5/2 degenerate; DSLT 4) the
degenerate phase wins while nβ·½ L_deg(θ) < Δλ log(nβ), Δλ = 2 (a heuristic: a difference of upper
bounds is not a bound), i.e. down to the θ where
L_deg(θ) = 2Δλ log(nβ)/(nβ) (:func:`pt1_critical_estimate`).  Measured: at n = 10 000 that level is
0.026 while L_deg(1.0) = 0.0073 (L_deg(θ): 0.0046 at 1.1, 0.0017 at 1.26, 0 at π/2), so this estimate
puts the degenerate configuration ahead on the whole grid θ ∈ [1, π/2] (also with the scaling
symmetries removed from the count, 7/2 − 2).  The best one-node network at θ = 1.0 has ‖ŵ‖ = 1.10,
not 2: the published degenerate annulus (one node within ε of norm 2) is centred on the θ = π/2
configuration and does not contain the degenerate critical configuration until θ ≳ 1.3.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from .. import _validate

__all__ = [
    "Configuration",
    "population_loss",
    "configuration_distance",
    "pt1_configurations",
    "pt2_configurations",
    "pt1_critical_estimate",
    "critical_configurations",
]


@dataclass(frozen=True)
class Configuration:
    """A local minimum of the population loss: parameters, effective weights (d, 2), L, and whether it
    exists as a separate critical point at this truth (PT2's annihilation configuration may not)."""

    phase: str
    w: np.ndarray
    b: np.ndarray
    q: np.ndarray
    c: float
    loss: float
    exists: bool = True
    note: str = ""

    @property
    def effective(self) -> np.ndarray:
        return np.abs(self.q)[:, None] * self.w


def _grid_points(grid: int) -> np.ndarray:
    grid = _validate.integer("grid", grid, minimum=8)
    t = -1.0 + (2.0 * np.arange(grid) + 1.0) / grid
    xx, yy = np.meshgrid(t, t, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def _forward(X, w, b, q, c, xp=np):
    return xp.maximum(X @ w.T + b, 0.0) @ q + c


def population_loss(w, b, q, c, truth, *, grid: int = 200) -> float:
    """L = E_x[(f(x; w, b, q, c) − f(x; truth))²] over U([−1, 1]²) on a ``grid``² midpoint grid; ``truth``
    = (w⁰, b⁰, q⁰, c⁰)."""
    X = _grid_points(grid)
    diff = _forward(X, np.asarray(w, float), np.asarray(b, float), np.asarray(q, float), float(c))
    diff = diff - _forward(X, *(np.asarray(t, float) for t in truth[:3]), float(truth[3]))
    return float(np.mean(diff**2))


def _minimise(start: dict, truth, grid: int):
    """Local minimum of L from ``start`` (dict of w (d, 2), b (d,), q (d,), c) by L-BFGS with JAX
    gradients; returns (params dict, L)."""
    from scipy.optimize import minimize

    from .._jax import jax, jnp

    X = jnp.asarray(_grid_points(grid))
    target = _forward(X, *(jnp.asarray(t, dtype=float) for t in truth[:3]), float(truth[3]), xp=jnp)
    shapes = [np.shape(start[k]) for k in ("w", "b", "q", "c")]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(v):
        parts, i = [], 0
        for s, k in zip(shapes, sizes):
            parts.append(v[i : i + k].reshape(s))
            i += k
        return parts

    def loss(v):
        w, b, q, c = unpack(v)
        return jnp.mean((_forward(X, w, b, q, c, xp=jnp) - target) ** 2)

    f = jax.jit(jax.value_and_grad(loss))
    v0 = np.concatenate([np.ravel(np.asarray(start[k], dtype=float)) for k in ("w", "b", "q", "c")])
    res = minimize(
        lambda v: tuple(np.asarray(a, dtype=float) for a in f(jnp.asarray(v))),
        v0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15},
    )
    w, b, q, c = (np.asarray(a) for a in unpack(res.x))
    return {"w": w, "b": b, "q": q, "c": float(np.asarray(c).reshape(()))}, float(res.fun)


def configuration_distance(eff, reference) -> np.ndarray:
    """D(ŵ, R) = min over node permutations π of max_a ‖ŵ_π(a) − R_a‖ for effective weights ``eff``
    (..., d, 2) against one configuration ``reference`` (d, 2) (module docstring)."""
    eff = np.asarray(eff, dtype=float)
    ref = np.asarray(reference, dtype=float)
    d = ref.shape[0]
    if eff.shape[-2:] != ref.shape:
        raise ValueError(f"effective weights have shape {eff.shape[-2:]}, the configuration {ref.shape}")
    perms = np.array(list(itertools.permutations(range(d))))
    dist = np.linalg.norm(eff[..., perms, :] - ref, axis=-1)  # (..., d!, d)
    return dist.max(axis=-1).min(axis=-1)


def _truth_tuple(truth) -> tuple:
    w, b, q, c = truth
    return (np.asarray(w, float), np.asarray(b, float), np.asarray(q, float), float(c))


def pt1_configurations(truth, *, grid: int = 200) -> dict[str, Configuration]:
    """{"degenerate", "non-degenerate"} configurations of a PT1 truth (w⁰ (2, 2), b⁰, q⁰, c⁰) — module
    docstring.  The degenerate one is the best one-node network (the second node dead: ŵ = 0)."""
    w0, b0, q0, c0 = _truth_tuple(truth)
    if w0.shape != (2, 2):
        raise ValueError(f"PT1 truths have two nodes, got weights of shape {w0.shape}")
    one, loss = _minimise(
        {"w": np.array([[0.0, 1.0]]), "b": np.array([-0.3]), "q": np.array([2.0]), "c": 0.0},
        (w0, b0, q0, c0),
        grid,
    )
    deg = Configuration(
        "degenerate",
        np.vstack([one["w"], np.zeros((1, 2))]),
        np.concatenate([one["b"], [-1.0]]),  # the dead node: ReLU(0·x − 1) = 0
        np.concatenate([one["q"], [0.0]]),
        one["c"],
        loss,
        note="best one-node network; the other node dead",
    )
    nondeg = Configuration("non-degenerate", w0, b0, q0, c0, 0.0, note="the truth")
    return {"degenerate": deg, "non-degenerate": nondeg}


def pt2_configurations(truth, *, grid: int = 200, merge_distance: float = 0.1) -> dict[str, Configuration]:
    """{"non-annihilation", "annihilation"} configurations of a PT2 truth (module docstring).  The
    annihilation configuration is the local minimum of L from the orientation-reversed network; it
    ``exists`` unless that minimum is within ``merge_distance`` (D, module docstring) of the truth."""
    w0, b0, q0, c0 = _truth_tuple(truth)
    merge_distance = _validate.positive("merge_distance", merge_distance)
    start = {"w": -w0, "b": -b0, "q": q0.copy(), "c": c0 + float(q0 @ b0)}
    found, loss = _minimise(start, (w0, b0, q0, c0), grid)
    reversed_eff = np.abs(q0)[:, None] * (-w0)  # the published ball's centre (ϑ-node scaled by ϑ)
    eff = np.abs(found["q"])[:, None] * found["w"]
    to_reversed = float(configuration_distance(eff, reversed_eff))
    to_truth = float(configuration_distance(eff, np.abs(q0)[:, None] * w0))
    exists = to_truth > merge_distance
    ann = Configuration(
        "annihilation",
        found["w"],
        found["b"],
        found["q"],
        found["c"],
        loss,
        exists=exists,
        note=(
            f"local minimum from the reversed network: D = {to_reversed:.3f} from the reversed weights, "
            f"{to_truth:.3f} from the truth" + ("" if exists else "; merged with the truth")
        ),
    )
    return {
        "non-annihilation": Configuration("non-annihilation", w0, b0, q0, c0, 0.0, note="the truth"),
        "annihilation": ann,
    }


@functools.lru_cache(maxsize=256)
def _cached(experiment: str, key: tuple, grid: int) -> dict[str, Configuration]:
    w, b, q, c = (np.array(key[0]), np.array(key[1]), np.array(key[2]), key[3])
    find = pt1_configurations if experiment == "pt1" else pt2_configurations
    return find((w, b, q, c), grid=grid)


def critical_configurations(experiment: str, truth, *, grid: int = 200) -> dict[str, Configuration]:
    """:func:`pt1_configurations` (``experiment`` "pt1") or :func:`pt2_configurations` ("pt2") of
    ``truth`` = (w⁰, b⁰, q⁰, c⁰), computed once per truth and grid (cached: the minimisations take
    seconds and every report asks for them several times)."""
    _validate.choice("experiment", experiment, ("pt1", "pt2"))
    w, b, q, c = _truth_tuple(truth)
    key = (tuple(map(tuple, w.tolist())), tuple(b.tolist()), tuple(q.tolist()), float(c))
    return _cached(experiment, key, _validate.integer("grid", grid, minimum=8))


def pt1_critical_estimate(loss_gap, thetas, n: int, *, dlambda: float = 2.0) -> float:
    """θ where the degenerate configuration's population loss ``loss_gap`` (on the increasing grid
    ``thetas``; decreasing in θ) equals 2Δλ log(nβ)/(nβ), nβ = n/log n (module docstring), by linear
    interpolation; −inf when L_deg is below the level on the whole grid (the degenerate phase ahead
    everywhere), +inf when above it everywhere (the non-degenerate phase ahead everywhere).  A
    heuristic: Δλ is a difference of two upper bounds, not itself a bound."""
    n = _validate.integer("n", n, minimum=3)
    nbeta = n / math.log(n)
    level = 2.0 * _validate.positive("dlambda", dlambda) * math.log(nbeta) / nbeta
    x, y = np.asarray(thetas, float), np.asarray(loss_gap, float) - level
    for i in range(len(x) - 1):
        if y[i] > 0 >= y[i + 1]:
            return float(x[i] + (x[i + 1] - x[i]) * y[i] / (y[i] - y[i + 1]))
    if np.all(y <= 0):
        return -math.inf
    return math.inf if np.all(y > 0) else math.nan
