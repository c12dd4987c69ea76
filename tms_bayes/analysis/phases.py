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

**The exact classifier** (r = 2) labels a sample k^{σ+,φ−} (SPEC 1.2).  Two rules are offered.

*By function* (:class:`FunctionalRule`, the default) — what each column *does* to the outputs, with
a_ij = W_i·W_j.  Output j on input e_i is ReLU(μ a_ij + b_j), μ ∈ [0, 1], so it is ever on iff
b_j + max(0, a_ij) > 0.  In order of precedence:

1. **σ+**: b_j > 0 and ‖W_j‖² ≤ b_j — the output is on for every input and its own feature moves it
   by less than its constant (the σ+ decoration: W_j = 0, b_j = 1/(2c)).
2. **functionally dead**: b_j ≤ 0, its own output never turns on,
   ``off_j = b_j + max(0, ‖W_j‖², max_{i≠j} a_ij) ≤ dead_tol``, and its input turns on no other
   output that is not a σ+ column, ``max_{i≠j, i not σ+} (a_ij + b_i) ≤ dead_tol`` (σ+ outputs are
   on anyway; W_j reaches them through a_ij with W_i ≈ 0).  With ``dead_tol = 0`` this is exactly
   the flat region of the critical set, where L does not depend on (W_j, b_j) at all (SPEC 2); the
   default ``dead_tol`` admits the cubic shell around it, where the column's effect on the loss is
   O(e³) in the excess e and posterior draws at n ≈ 300–1200 still sit (issue 13's measurements).
3. **φ−** (a switched-off vertex): functionally dead with ‖W_j‖ ≥ ``vertex_norm`` — it sits where a
   polygon vertex would be (the 4-gon's missing vertex), so it counts towards k.  A dead 5-gon
   column cannot reach this norm and stay dead (W_i·W_j ≤ −b_i ≈ 0.28 bounds it by ≈ 0.3).
4. **vertex**: every other column.  k = the number of vertices (φ− included); the sample is a
   polygon only if k ≥ 3 and every vertex tip is a corner of their convex hull (strict convexity of
   the tips ordered by angle about their centroid); otherwise ``"unclassified"``.

The label is phase_name(k, #σ+, #φ−).  Every catalogue point is labelled as itself
(tests/test_phases.py), and draws from the 5-gon's flat dead-column region are labelled 5 however
far the dead column wanders inside it.

*By thresholds* (:class:`Thresholds`, the previous rule, kept for comparison): columns with
‖W_j‖ ≥ ``vertex_norm`` are vertices, ‖W_j‖ ≤ ``zero_norm`` zero columns (σ+ if b_j > ``bias_tol``),
a vertex with b_j < −``off_factor``·‖W_j‖² is φ−, and any column between the two norms makes the
sample unclassified.  It sends most draws of the 5-gon's flat region to "unclassified" (their dead
column reaches ‖W_j‖ ≈ 0.3 > zero_norm at no cost), which biases every share towards the 6-gon.

The functional rule is defined once, in :mod:`tms_bayes.theory.regions`, against an array
namespace: the same definition is the JAX indicator of a phase's region used by the restricted-phase
free-energy estimator (:mod:`tms_bayes.inference.phase_smc`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from sklearn.base import BaseEstimator, ClassifierMixin

from .. import _validate
from .._options import setting
from ..theory import regions
from ..theory.critical_points import phase_name

__all__ = [
    "UNCLASSIFIED",
    "tms_features",
    "relu_features",
    "classify_tms",
    "TMSPhaseClassifier",
    "Thresholds",
    "FunctionalRule",
    "Rule",
    "rule_from_options",
    "ClassifierOptions",
]

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


def effective_weights(w, q) -> np.ndarray:
    """Effective weights ŵ_a = |q_a| w_a of a two-layer ReLU network, invariant under the scaling
    (w_a, b_a, q_a) → (α w_a, α b_a, q_a/α), α > 0: w (..., d, 2), q (..., d) -> (..., d, 2)."""
    w = _validate.finite_array("w", w, ndim_min=2)
    q = _validate.finite_array("q", q)
    if w.shape[:-1] != q.shape:
        raise ValueError(f"q must have shape w.shape[:-1] = {w.shape[:-1]}, got {q.shape}")
    return np.abs(q)[..., None] * w


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
    eff = effective_weights(w, q)  # (..., d, 2)
    axis = np.linspace(-extent, extent, grid)
    centers = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)  # (K, 2)
    d2 = ((eff[..., :, None, :] - centers) ** 2).sum(-1)  # (..., d, K)
    bumps = np.exp(-0.5 * d2 / bandwidth**2)
    parts = [bumps.sum(-2), ((aq * b)[..., None] * bumps).sum(-2), (np.sign(q)[..., None] * bumps).sum(-2)]
    return np.concatenate(parts, axis=-1)


@dataclass(frozen=True)
class FunctionalRule:
    """The classifier by function (module docstring; :mod:`tms_bayes.theory.regions`), the default.

    ``dead_tol``: a column is functionally dead while its own output and its reach into the other
    outputs stay ≤ ``dead_tol`` (0 = exactly the flat region); ``vertex_norm``: a dead column at least
    this long is a switched-off vertex (φ−)."""

    dead_tol: float = regions.DEFAULT_DEAD_TOL
    vertex_norm: float = regions.DEFAULT_VERTEX_NORM

    def __post_init__(self):
        _validate.positive("dead_tol", self.dead_tol, strict=False)
        _validate.positive("vertex_norm", self.vertex_norm)

    def attrs(self) -> dict:
        return {"classifier": "function", "dead_tol": self.dead_tol, "vertex_norm": self.vertex_norm}

    def describe(self) -> str:
        return (
            f"the functional rule (a column is dead when its outputs stay off up to "
            f"dead_tol = {self.dead_tol:g}; φ− when such a column is at least "
            f"vertex_norm = {self.vertex_norm:g} long; k by the convex hull)"
        )

    def classify(self, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        return regions.label_samples(
            W, b, tol=self.dead_tol, vertex_norm=self.vertex_norm, unclassified=UNCLASSIFIED
        )


@dataclass(frozen=True)
class Thresholds:
    """The previous classifier by column-norm thresholds (module docstring), kept for comparison."""

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

    def attrs(self) -> dict:
        return {
            "classifier": "threshold",
            "vertex_norm": self.vertex_norm,
            "zero_norm": self.zero_norm,
            "bias_tol": self.bias_tol,
            "off_factor": self.off_factor,
        }

    def describe(self) -> str:
        return (
            f"the threshold rule (vertex_norm = {self.vertex_norm:g}, zero_norm = {self.zero_norm:g}, "
            f"bias_tol = {self.bias_tol:g}, off_factor = {self.off_factor:g})"
        )

    def classify(self, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        flatW = W.reshape(-1, *W.shape[-2:])
        flatb = b.reshape(-1, b.shape[-1])
        labels = np.array([_classify_one(Wi, bi, self) for Wi, bi in zip(flatW, flatb)], dtype=object)
        return labels.reshape(W.shape[:-2])


Rule = FunctionalRule | Thresholds


@dataclass(frozen=True)
class ClassifierOptions:
    """The phase rule as settings (``--classifier`` and its options); :meth:`rule` builds it."""

    classifier: str = setting(
        "function",
        "phase rule: by what the columns do, or the old column-norm thresholds",
        choices=("function", "threshold"),
    )
    dead_tol: float = setting(
        regions.DEFAULT_DEAD_TOL, "function rule: a column whose outputs stay off up to this is dead"
    )
    vertex_norm: float = setting(0.5, "classifier: min column norm of a polygon vertex / of a φ− column")
    zero_norm: float = setting(0.25, "threshold rule: max column norm of a zero column")
    bias_tol: float = setting(0.0, "threshold rule: a zero column with bias above this is σ+")
    off_factor: float = setting(1.0, "threshold rule: a vertex with b < -off_factor·|W_j|² is switched off")

    def __post_init__(self):
        _validate.choice("classifier", self.classifier, ("function", "threshold"))
        _validate.positive("dead_tol", self.dead_tol, strict=False)
        _validate.positive("vertex_norm", self.vertex_norm)
        _validate.positive("zero_norm", self.zero_norm, strict=False)
        if not (math.isfinite(self.bias_tol)):
            raise ValueError(f"bias_tol must be a finite number, got {self.bias_tol!r}")
        _validate.positive("off_factor", self.off_factor, strict=False)
        if self.classifier == "threshold" and self.zero_norm >= self.vertex_norm:
            raise ValueError(
                f"zero_norm must be below vertex_norm, got {self.zero_norm} >= {self.vertex_norm}"
            )

    def rule(self) -> "Rule":
        return rule_from_options(
            self.classifier,
            dead_tol=self.dead_tol,
            vertex_norm=self.vertex_norm,
            zero_norm=self.zero_norm,
            bias_tol=self.bias_tol,
            off_factor=self.off_factor,
        )


def rule_from_options(
    classifier: str = "function",
    *,
    dead_tol: float = regions.DEFAULT_DEAD_TOL,
    vertex_norm: float = 0.5,
    zero_norm: float = 0.25,
    bias_tol: float = 0.0,
    off_factor: float = 1.0,
) -> Rule:
    """The rule named by ``classifier`` ("function" or "threshold") with its options (CLI helper)."""
    classifier = _validate.choice("classifier", classifier, ("function", "threshold"))
    if classifier == "function":
        return FunctionalRule(dead_tol=dead_tol, vertex_norm=vertex_norm)
    return Thresholds(vertex_norm, zero_norm, bias_tol, off_factor)


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


def classify_tms(W, b, rule: Rule | None = None) -> np.ndarray:
    """k^{σ+,φ−} labels (or ``"unclassified"``) for TMS samples W (..., 2, c), b (..., c) by ``rule``
    (default: :class:`FunctionalRule`; module docstring)."""
    rule = FunctionalRule() if rule is None else rule
    if not isinstance(rule, (FunctionalRule, Thresholds)):
        raise ValueError(f"rule must be a FunctionalRule or Thresholds, got {type(rule).__name__}")
    W = _validate.finite_array("W", W, ndim_min=2)
    b = _validate.finite_array("b", b)
    if W.shape[-2] != 2:
        raise ValueError(f"the exact k-gon classifier is defined for r = 2; W has r = {W.shape[-2]}")
    if b.shape != W.shape[:-2] + W.shape[-1:]:
        raise ValueError(f"b must have shape (..., c) matching W (..., 2, c) = {W.shape}, got {b.shape}")
    return rule.classify(W, b)


class TMSPhaseClassifier(ClassifierMixin, BaseEstimator):
    """scikit-learn estimator wrapper of :func:`classify_tms` on packed samples (rows: W row-major,
    then b — the layout of :func:`tms_bayes.theory.pack`).  ``fit`` only validates: the classifier is
    exact, not learned.  ``classifier`` = "function" (default) or "threshold" (module docstring)."""

    def __init__(
        self,
        c: int = 6,
        classifier: str = "function",
        dead_tol: float = regions.DEFAULT_DEAD_TOL,
        vertex_norm: float = 0.5,
        zero_norm: float = 0.25,
        bias_tol: float = 0.0,
        off_factor: float = 1.0,
    ):
        self.c = c
        self.classifier = classifier
        self.dead_tol = dead_tol
        self.vertex_norm = vertex_norm
        self.zero_norm = zero_norm
        self.bias_tol = bias_tol
        self.off_factor = off_factor

    def _rule(self) -> Rule:
        return rule_from_options(
            self.classifier,
            dead_tol=self.dead_tol,
            vertex_norm=self.vertex_norm,
            zero_norm=self.zero_norm,
            bias_tol=self.bias_tol,
            off_factor=self.off_factor,
        )

    def _split(self, X):
        X = _validate.finite_array("X", X, ndim_min=2)
        if X.shape[1] != 3 * self.c:
            raise ValueError(
                f"X must have 3c = {3 * self.c} columns (W of shape (2, c) then b), got {X.shape[1]}"
            )
        return X[:, : 2 * self.c].reshape(-1, 2, self.c), X[:, 2 * self.c :]

    def fit(self, X, y=None):
        self._split(X)
        self.rule_ = self._rule()
        self.classes_ = None
        return self

    def predict(self, X):
        W, b = self._split(X)
        return classify_tms(W, b, self._rule())
