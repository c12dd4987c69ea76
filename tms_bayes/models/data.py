"""Data generators with explicit seeds (SPEC 1 and 5).

A sweep over n uses the first n rows of one dataset per seed, so a larger n adds data to a smaller
one (D_{n₁} ⊂ D_{n₂}), as in the TMS paper.  The datasets are **stable**: row k of the dataset of a
seed is the same whatever number of rows is drawn (each row consumes a fixed number of draws from
the stream, in order), so D_n for (seed, n) is one thing everywhere — a sweep over any grid, an SMC
run, a user's call ``tms_inputs(n, c, seed)``.
"""

from __future__ import annotations

import numpy as np

from .. import _validate

__all__ = ["tms_inputs", "relu_inputs"]


def tms_inputs(n: int, c: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Draw n TMS inputs x = μ e_i, i ~ U{0..c−1}, μ ~ U[0, 1] (high-sparsity limit, SPEC 1).

    Returns a float64 array of shape (n, c) with exactly one non-zero entry per row.
    ``seed`` is an int (reproducible) or a ``numpy.random.Generator``.
    """
    n = _validate.integer("n", n, minimum=1)
    c = _validate.integer("c", c, minimum=1)
    rng = (
        seed
        if isinstance(seed, np.random.Generator)
        else np.random.default_rng(_validate.integer("seed", seed, minimum=0))
    )
    u = rng.random((n, 2))  # row k: (feature, magnitude) from the k-th pair of uniforms — stable in n
    idx = np.minimum((u[:, 0] * c).astype(int), c - 1)
    mu = u[:, 1]
    X = np.zeros((n, c))
    X[np.arange(n), idx] = mu
    return X


def relu_inputs(n: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Draw n inputs x ~ U([−1, 1]²) for the two-layer ReLU experiments (SPEC 5); shape (n, 2)."""
    n = _validate.integer("n", n, minimum=1)
    rng = (
        seed
        if isinstance(seed, np.random.Generator)
        else np.random.default_rng(_validate.integer("seed", seed, minimum=0))
    )
    return rng.uniform(-1.0, 1.0, size=(n, 2))
