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

__all__ = [
    "DEFAULT_DEAD_TOL",
    "DEFAULT_VERTEX_NORM",
    "column_roles",
    "polygon_is_convex",
    "in_phase_xp",
    "label_samples",
    "align_to_reference",
]

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


def in_phase_xp(
    xp,
    W,
    b,
    k: int,
    sigma: int,
    phi: int,
    *,
    tol: float = DEFAULT_DEAD_TOL,
    vertex_norm: float = DEFAULT_VERTEX_NORM,
):
    """Indicator of the region of phase k^{σ+,φ−} (module docstring) for W (..., 2, c), b (..., c)."""
    splus, _, off, vertex = column_roles(xp, W, b, tol=tol, vertex_norm=vertex_norm)
    counts_ok = (xp.sum(splus, axis=-1) == sigma) & (xp.sum(off, axis=-1) == phi)
    return counts_ok & polygon_is_convex(xp, W, vertex, k)


def label_samples(
    W,
    b,
    *,
    tol: float = DEFAULT_DEAD_TOL,
    vertex_norm: float = DEFAULT_VERTEX_NORM,
    unclassified: str = "unclassified",
):
    """Phase names k^{σ+,φ−} (numpy object array of shape W.shape[:-2]) of samples W (..., 2, c),
    b (..., c) by the functional rule (module docstring); ``unclassified`` where no phase applies."""
    from .critical_points import phase_name

    W, b = np.asarray(W, dtype=float), np.asarray(b, dtype=float)
    lead = W.shape[:-2]
    W, b = W.reshape(-1, *W.shape[-2:]), b.reshape(-1, b.shape[-1])
    splus, _, off, vertex = column_roles(np, W, b, tol=tol, vertex_norm=vertex_norm)
    k = vertex.sum(-1)
    ok = np.zeros(k.shape, dtype=bool)
    for kk in np.unique(k[k >= 3]):
        sel = k == kk
        ok[sel] = polygon_is_convex(np, W[sel], vertex[sel], int(kk))
    names = np.full(k.shape, unclassified, dtype=object)
    code = np.stack([k, splus.sum(-1), off.sum(-1)], axis=-1)
    for kk, s, p in np.unique(code[ok], axis=0):
        names[ok & np.all(code == (kk, s, p), axis=-1)] = phase_name(int(kk), int(s), int(p))
    return names.reshape(lead)


def align_to_reference(
    W, b, W_ref, k: int, *, tol: float = DEFAULT_DEAD_TOL, vertex_norm: float = DEFAULT_VERTEX_NORM
):
    """Map samples of a k-gon phase onto the symmetry copy nearest the reference polygon ``W_ref`` (2, c),
    whose first k columns are its vertices in counter-clockwise order (numpy; W (P, 2, c), b (P, c)).

    Every sample's vertices (module docstring) are put in angular order; over both orientations (a
    reflection) and the k cyclic shifts, the rotation θ = atan2(Σ v_j × r_j, Σ v_j · r_j) that best
    aligns them with the reference vertices r_j is applied, and the columns are permuted to
    [vertices, σ+ columns, dead columns].  L, the prior and the phase regions are invariant under these
    maps, so an SMC may apply them to its particles between moves: it changes no weight, and it lets a
    mass matrix estimated from the particles see one copy of the critical set instead of all of them."""
    W, b = np.asarray(W, dtype=float), np.asarray(b, dtype=float)
    P, _, c = W.shape
    splus, dead, _, vertex = column_roles(np, W, b, tol=tol, vertex_norm=vertex_norm)
    ref = np.asarray(W_ref, dtype=float)[:, :k]
    best, best_score = None, np.full(P, -np.inf)
    for o in (1.0, -1.0):
        Wo = W * np.array([1.0, o])[None, :, None]
        centre = (Wo * vertex[:, None, :]).sum(-1) / k
        rel = Wo - centre[..., None]
        ang = np.where(vertex, np.arctan2(rel[:, 1], rel[:, 0]), 10.0)
        order = np.argsort(ang, axis=-1)[:, :k]
        for s in range(k):
            idx = np.roll(order, s, axis=-1)
            V = np.take_along_axis(Wo, idx[:, None, :], axis=2)
            A = np.einsum("pij,ij->p", V, ref)
            B = np.sum(V[:, 0] * ref[1] - V[:, 1] * ref[0], axis=-1)
            score = np.hypot(A, B)
            better = score > best_score
            if best is None:
                best = (np.broadcast_to(o, P).copy(), idx.copy(), np.arctan2(B, A))
            else:
                best[0][better], best[1][better], best[2][better] = o, idx[better], np.arctan2(B, A)[better]
            best_score = np.maximum(best_score, score)
    o, idx, th = best
    rest = np.argsort(
        np.where(splus, 0, np.where(dead, 1, 2)) * 10 * c + np.arange(c), axis=-1
    )  # σ+ then dead columns
    perm = np.concatenate([idx, rest[:, : c - k]], axis=-1)
    Wo = W * np.stack([np.ones(P), o], -1)[..., None]
    R = np.stack([np.stack([np.cos(th), -np.sin(th)], -1), np.stack([np.sin(th), np.cos(th)], -1)], -2)
    Wn = np.einsum("pij,pjc->pic", R, Wo)
    return np.take_along_axis(Wn, perm[:, None, :], axis=2), np.take_along_axis(b, perm, axis=1)
