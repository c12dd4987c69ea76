"""Phase regions of the TMS parameter space at r = 2, defined by what the columns *do* (SPEC 1.2, 2).

With a_ij = W_i·W_j, output j on input μ e_i (μ ∈ [0, 1]) is ReLU(μ a_ij + b_j): it is ever on iff
b_j + max(0, a_ij) > 0.  Each column gets one role, in this order of precedence:

1. **σ+** — b_j > 0 and ‖W_j‖² ≤ b_j: its output is on for every input and its own feature moves it
   by less than its constant (the σ+ decoration W_j = 0, b_j = 1/(2c)).
2. **functionally dead** — b_j ≤ 0, its own output never turns on,
   off_j = b_j + max(0, ‖W_j‖², max_{i≠j} a_ij) ≤ tol, and its input turns on no output other than
   the σ+ ones, max_{i≠j, i not σ+} (a_ij + b_i) ≤ tol.  At tol = 0 this is exactly the flat region
   of the critical set: L does not depend on (W_j, b_j) there.  A tolerance tol > 0 admits the cubic
   shell around it (the column's effect on L is O(e³) in the excess e).
3. **φ−** — functionally dead with ‖W_j‖ ≥ ``vertex_norm``: a switched-off column sitting where a
   polygon vertex would be (the 4-gon's missing vertex); it counts towards k.
4. **vertex** — every other column.  The sample is a k-gon iff k = #vertices (φ− included) ≥ 3 and
   every vertex tip is a corner of their convex hull: ordered by angle about their centroid, every
   turn is strictly to the left.

The region of phase k^{σ+,φ−} is the set of samples with those counts and a convex polygon; the
regions are disjoint and the remainder is "unclassified".  Everything is written once against an
array namespace ``xp`` (numpy or jax.numpy), so the classifier and the JAX indicator used by the
restricted-phase free-energy estimator are one definition.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_DEAD_TOL", "DEFAULT_VERTEX_NORM", "column_roles", "polygon_is_convex", "in_phase_xp"]

#: Default tolerance of the functional dead-column test (module docstring, rule 2).  Chosen so that
#: ≥ 95 % of posterior-like draws around the 5-gon at n = 300–1200 (flat region, cubic shell,
#: Laplace-Gaussian transverse noise) are labelled 5 (tests/test_phases.py); a 6-gon vertex has
#: off_j ≈ 1.1 and a 5-gon vertex ≈ 1.1, far above it.
DEFAULT_DEAD_TOL = 0.4
#: A functionally dead column at least this long is a switched-off vertex (φ−), not a dead column.
DEFAULT_VERTEX_NORM = 0.5


def column_roles(xp, W, b, *, tol: float = DEFAULT_DEAD_TOL, vertex_norm: float = DEFAULT_VERTEX_NORM):
    """Boolean masks (σ+, dead, φ−, vertex), each of shape (..., c), for W (..., 2, c), b (..., c)."""
    c = W.shape[-1]
    a = xp.einsum("...ri,...rj->...ij", W, W)
    sq = xp.diagonal(a, axis1=-2, axis2=-1)
    eye = xp.eye(c, dtype=bool)
    splus = (b > 0) & (sq <= b)
    off_diag = xp.where(eye, -xp.inf, a)
    own = b + xp.maximum(xp.maximum(sq, 0.0), xp.max(off_diag, axis=-1))
    # effect of input j on output i: a_ij + b_i, for outputs i ≠ j that are not σ+
    reach = xp.where(eye | splus[..., :, None], -xp.inf, a + b[..., :, None])
    silent = xp.max(reach, axis=-2) <= tol
    functionally_dead = (~splus) & (b <= 0) & (own <= tol) & silent
    long = sq >= vertex_norm**2
    phi = functionally_dead & long
    dead = functionally_dead & ~long
    vertex = ~splus & ~dead
    return splus, dead, phi, vertex


def polygon_is_convex(xp, W, vertex, k: int):
    """True where the ``k`` columns marked by ``vertex`` (..., c) are the corners of a strictly convex
    polygon (samples with another number of vertices give False).  ``k`` is static (≥ 3)."""
    vf = vertex.astype(W.dtype)
    count = xp.sum(vf, axis=-1)
    centre = xp.sum(W * vf[..., None, :], axis=-1) / xp.maximum(count, 1.0)[..., None]
    rel = W - centre[..., :, None]
    ang = xp.where(vertex, xp.arctan2(rel[..., 1, :], rel[..., 0, :]), 10.0)  # non-vertices sort last
    order = xp.argsort(ang, axis=-1)[..., :k]
    x = xp.take_along_axis(W[..., 0, :], order, axis=-1)
    y = xp.take_along_axis(W[..., 1, :], order, axis=-1)
    ex, ey = xp.roll(x, -1, axis=-1) - x, xp.roll(y, -1, axis=-1) - y
    cross = ex * xp.roll(ey, -1, axis=-1) - ey * xp.roll(ex, -1, axis=-1)
    return (count == k) & xp.all(cross > 0, axis=-1)


def in_phase_xp(xp, W, b, k: int, sigma: int, phi: int, *, tol: float = DEFAULT_DEAD_TOL, vertex_norm: float = DEFAULT_VERTEX_NORM):
    """Indicator of the region of phase k^{σ+,φ−} (module docstring) for W (..., 2, c), b (..., c)."""
    splus, _, off, vertex = column_roles(xp, W, b, tol=tol, vertex_norm=vertex_norm)
    counts_ok = (xp.sum(splus, axis=-1) == sigma) & (xp.sum(off, axis=-1) == phi)
    return counts_ok & polygon_is_convex(xp, W, vertex, k)
