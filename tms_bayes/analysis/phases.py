"""Phases of posterior samples: symmetry-invariant features and the exact TMS k-gon classifier.

**Invariant features.**  The TMS model depends on W only through the Gram matrix G = WᵀW (O(r)
symmetry) and is unchanged by permuting the columns of W together with the entries of b.  For each
column j the row  (‖W_j‖, b_j, the other c − 1 dot products W_j·W_k sorted in decreasing order)  is
invariant under O(r) and under permutations of the *other* columns; sorting the c rows (by norm,
then bias) removes the remaining permutation.  The flattened rows are the features:
rotated, reflected and permuted copies of a sample give identical features.

For the two-layer ReLU models the symmetries are node permutation and the positive scaling
(w_a, b_a, q_a) → (α w_a, α b_a, q_a/α).  The effective weight ŵ_a = |q_a| w_a, the effective bias
|q_a| b_a and sign(q_a) are scaling-invariant; :func:`relu_features` sums smooth bumps over nodes.

**The exact classifier** (r = 2) labels a sample k^{σ+,φ−} (SPEC 1.2):

- columns with ‖W_j‖ ≥ ``vertex_norm`` are polygon vertices; k = the number of vertices of the
  convex hull of their tips (all of them, for a polygon);
- columns with ‖W_j‖ ≤ ``zero_norm`` are zero columns; σ counts those with bias > ``bias_tol``;
- φ counts hull vertices switched off: b_j < −``off_factor``·‖W_j‖² (feature j is never output);
- a sample is ``"unclassified"`` rather than forced into a phase when a column has a norm between
  the two thresholds, when a large column is not a hull vertex (not a polygon), or when k < 3.

Defaults: vertex_norm = 0.5, zero_norm = 0.25, bias_tol = 0, off_factor = 1.  The catalogue's
polygons have ‖W_j‖ ≥ 1 and zero columns 0; at n ≳ 400 posterior noise is ~0.1 (SPEC 2 warns that
below n ≈ 400 classification becomes unreliable — the unclassified share reports it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from sklearn.base import BaseEstimator, ClassifierMixin

from .. import _validate
from ..theory.critical_points import phase_name

__all__ = ["UNCLASSIFIED", "tms_features", "relu_features", "classify_tms", "TMSPhaseClassifier", "Thresholds"]

UNCLASSIFIED = "unclassified"


def tms_features(W, b) -> np.ndarray:
    """Invariant features of TMS samples: W (..., r, c), b (..., c) -> (..., c·(c + 1)) (module docstring)."""
    W = _validate.finite_array("W", W, ndim_min=2)
    b = _validate.finite_array("b", b, ndim_min=1)
    if b.shape[-1] != W.shape[-1] or b.shape[:-1] != W.shape[:-2]:
        raise ValueError(f"b must have shape (..., c) matching W (..., r, c) = {W.shape}, got {b.shape}")
    c = W.shape[-1]
    G = np.einsum("...ri,...rj->...ij", W, W)
    norms = np.sqrt(np.clip(np.diagonal(G, axis1=-2, axis2=-1), 0.0, None))
    off = np.where(np.eye(c, dtype=bool), -np.inf, G)
    others = -np.sort(-off, axis=-1)[..., : c - 1]  # drop the −inf diagonal, decreasing order
    rows = np.concatenate([norms[..., None], b[..., None], others], axis=-1)  # (..., c, c + 1)
    # sort rows by norm (decreasing), then bias; keys rounded so float noise cannot reorder ties
    order = np.lexsort((np.round(b, 10), -np.round(norms, 10)), axis=-1)
    rows = np.take_along_axis(rows, order[..., None], axis=-2)
    return rows.reshape(*rows.shape[:-2], c * (c + 1))


def relu_features(w, b, q, *, grid: int = 9, extent: float = 2.5, bandwidth: float = 0.4) -> np.ndarray:
    """Scaling- and permutation-invariant features of ReLU samples: w (..., d, 2), b (..., d), q (..., d).

    Each node contributes Gaussian bumps at its effective weight ŵ_a = |q_a| w_a on a ``grid``×``grid``
    lattice over [−extent, extent]² (bandwidth ``bandwidth``); the features are the sums over nodes of
    those bumps, of the bumps weighted by the effective bias |q_a| b_a, and by sign(q_a):
    3·grid² numbers.  Sums over nodes make them exactly permutation-invariant and continuous — a
    sorted list of nodes is not continuous (a near-zero node's angle is noise, equal-norm nodes swap).
    """
    w = _validate.finite_array("w", w, ndim_min=2)
    b = _validate.finite_array("b", b)
    q = _validate.finite_array("q", q)
    aq = np.abs(q)
    eff = aq[..., None] * w  # (..., d, 2)
    axis = np.linspace(-extent, extent, grid)
    centers = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)  # (K, 2)
    d2 = ((eff[..., :, None, :] - centers) ** 2).sum(-1)  # (..., d, K)
    bumps = np.exp(-0.5 * d2 / bandwidth**2)
    parts = [bumps.sum(-2), ((aq * b)[..., None] * bumps).sum(-2), (np.sign(q)[..., None] * bumps).sum(-2)]
    return np.concatenate(parts, axis=-1)


@dataclass(frozen=True)
class Thresholds:
    vertex_norm: float = 0.5
    zero_norm: float = 0.25
    bias_tol: float = 0.0
    off_factor: float = 1.0

    def __post_init__(self):
        _validate.positive("vertex_norm", self.vertex_norm)
        _validate.positive("zero_norm", self.zero_norm)
        _validate.positive("off_factor", self.off_factor)
        if self.zero_norm > self.vertex_norm:
            raise ValueError(f"zero_norm must be <= vertex_norm, got {self.zero_norm} > {self.vertex_norm}")


def _classify_one(W: np.ndarray, b: np.ndarray, t: Thresholds) -> str:
    norms = np.linalg.norm(W, axis=0)
    big = norms >= t.vertex_norm
    small = norms <= t.zero_norm
    if np.any(~big & ~small):
        return UNCLASSIFIED
    idx = np.flatnonzero(big)
    if idx.size < 3:
        return UNCLASSIFIED
    try:
        hull = ConvexHull(W[:, idx].T)
    except QhullError:  # collinear tips: no polygon
        return UNCLASSIFIED
    if hull.vertices.size != idx.size:  # a large column inside the hull: not a polygon
        return UNCLASSIFIED
    k = idx.size
    sigma = int(np.sum(small & (b > t.bias_tol)))
    phi = int(np.sum(b[idx] < -t.off_factor * norms[idx] ** 2))
    return phase_name(k, sigma, phi)


def classify_tms(W, b, thresholds: Thresholds | None = None) -> np.ndarray:
    """k^{σ+,φ−} labels (or ``"unclassified"``) for TMS samples W (..., 2, c), b (..., c) (module docstring)."""
    t = thresholds or Thresholds()
    W = _validate.finite_array("W", W, ndim_min=2)
    b = _validate.finite_array("b", b)
    if W.shape[-2] != 2:
        raise ValueError(f"the exact k-gon classifier is defined for r = 2; W has r = {W.shape[-2]}")
    lead = W.shape[:-2]
    flatW = W.reshape(-1, *W.shape[-2:])
    flatb = b.reshape(-1, b.shape[-1])
    labels = np.array([_classify_one(Wi, bi, t) for Wi, bi in zip(flatW, flatb)], dtype=object)
    return labels.reshape(lead)


class TMSPhaseClassifier(ClassifierMixin, BaseEstimator):
    """scikit-learn estimator wrapper of :func:`classify_tms` on packed samples (rows: W row-major,
    then b — the layout of :func:`tms_bayes.theory.pack`).  ``fit`` only validates: the classifier is
    exact, not learned."""

    def __init__(self, c: int = 6, vertex_norm: float = 0.5, zero_norm: float = 0.25, bias_tol: float = 0.0, off_factor: float = 1.0):
        self.c = c
        self.vertex_norm = vertex_norm
        self.zero_norm = zero_norm
        self.bias_tol = bias_tol
        self.off_factor = off_factor

    def _split(self, X):
        X = _validate.finite_array("X", X, ndim_min=2)
        if X.shape[1] != 3 * self.c:
            raise ValueError(f"X must have 3c = {3 * self.c} columns (W of shape (2, c) then b), got {X.shape[1]}")
        return X[:, : 2 * self.c].reshape(-1, 2, self.c), X[:, 2 * self.c :]

    def fit(self, X, y=None):
        self._split(X)
        self.thresholds_ = Thresholds(self.vertex_norm, self.zero_norm, self.bias_tol, self.off_factor)
        self.classes_ = None
        return self

    def predict(self, X):
        W, b = self._split(X)
        return classify_tms(W, b, Thresholds(self.vertex_norm, self.zero_norm, self.bias_tol, self.off_factor))
