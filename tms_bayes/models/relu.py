"""Two-layer ReLU truth/model pairs (SPEC 5; Carroll's thesis and DSLT 4).

Model   f(x; w) = Σ_{a=1..d} q_a ReLU(⟨w_a, x⟩ + b_a) + c,   x ∈ R², 4d + 1 parameters,
        N(0, prior_std²) priors.
Data    x ~ U([−1, 1]²),  y = f(x; w⁰) + N(0, 1).
Tempered posterior: the likelihood N(y | f, σ²) is raised to β (default 1/log n, as the published
experiments); a mask selects D_n ⊂ D_N, as for TMS.  ``y`` is the observed variable ``y_obs`` (dims
``obs``), tempered and masked by one Potential (:func:`tms_bayes.models.tms.observed_gaussian`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .. import _validate
from .data import relu_inputs
from .tms import _mask, observed_gaussian

__all__ = [
    "ReluTruth",
    "pt1_truth",
    "pt2_truth",
    "symmetric_truth",
    "relu_data",
    "relu_forward",
    "relu_model",
    "default_beta",
    "PT1_THETAS",
    "PT2_VARTHETAS",
    "EXPERIMENTS",
    "experiment_truth",
]

#: SPEC 5 grids: θ ∈ [1.0, 1.36] step 0.02 plus 1.43, 1.50, π/2;
#: ϑ ∈ [1, 2] step 0.1 plus 2.25, 2.5, 2.75, 3.
PT1_THETAS = tuple(float(v) for v in np.round(np.arange(1.0, 1.3601, 0.02), 2)) + (1.43, 1.50, math.pi / 2)
PT2_VARTHETAS = tuple(float(v) for v in np.round(np.arange(1.0, 2.001, 0.1), 1)) + (2.25, 2.5, 2.75, 3.0)


@dataclass(frozen=True)
class ReluTruth:
    """A true two-layer ReLU network: weights w (m, 2), biases b (m,), output weights q (m,), bias c."""

    name: str
    w: np.ndarray
    b: np.ndarray
    q: np.ndarray
    c: float = 0.0

    def __call__(self, X) -> np.ndarray:
        return relu_forward(X, self.w, self.b, self.q, self.c)


def relu_forward(X, w, b, q, c):
    """f(x) = Σ_a q_a ReLU(⟨w_a, x⟩ + b_a) + c for X (n, 2) (numpy)."""
    return np.maximum(np.asarray(X) @ np.asarray(w).T + b, 0.0) @ q + c


def pt1_truth(theta: float) -> ReluTruth:
    """Phase Transition 1 (SPEC 5): w₁⁰ = (cos θ, sin θ), w₂⁰ = (−cos θ, sin θ), b = −0.3,
    q = 1, c = 0."""
    theta = float(theta)
    if not (math.isfinite(theta) and 0.0 < theta <= math.pi / 2):
        raise ValueError(f"theta must be in (0, π/2], got {theta!r}")
    w = np.array([[math.cos(theta), math.sin(theta)], [-math.cos(theta), math.sin(theta)]])
    return ReluTruth(f"pt1(theta={theta:g})", w, np.full(2, -0.3), np.ones(2), 0.0)


def pt2_truth(vartheta: float) -> ReluTruth:
    """Phase Transition 2 (SPEC 5): unit weights at angles π/3 − 2πk/3 (k = 0, 1, 2), b = −0.3, c = 0,
    output weight ϑ on the node pointing at (−1, 0) and 1 on the others."""
    vartheta = _validate.positive("vartheta", vartheta)
    angles = np.pi / 3 - 2 * np.pi * np.arange(3) / 3
    w = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    q = np.ones(3)
    q[np.argmin(np.abs(w[:, 0] + 1.0) + np.abs(w[:, 1]))] = vartheta
    return ReluTruth(f"pt2(vartheta={vartheta:g})", w, np.full(3, -0.3), q, 0.0)


#: experiment name -> (truth builder, default grid, model nodes d, name of the varied parameter)
EXPERIMENTS = {"pt1": (pt1_truth, PT1_THETAS, 2, "theta"), "pt2": (pt2_truth, PT2_VARTHETAS, 3, "vartheta")}


def experiment_truth(experiment: str, value: float) -> ReluTruth:
    """The truth of ``experiment`` ("pt1": θ, "pt2": ϑ) at ``value``."""
    _validate.choice("experiment", experiment, EXPERIMENTS)
    return EXPERIMENTS[experiment][0](value)


def symmetric_truth(m: int, *, bias: float = -0.3, q: float = 1.0) -> ReluTruth:
    """The generic m-symmetric truth: m unit weights at angles 2πk/m, common bias and output weight."""
    m = _validate.integer("m", m, minimum=1)
    angles = 2 * np.pi * np.arange(m) / m
    w = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return ReluTruth(f"symmetric(m={m})", w, np.full(m, float(bias)), np.full(m, float(q)), 0.0)


def relu_data(
    truth: ReluTruth, n: int, seed: int = 0, *, noise_std: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y): n inputs x ~ U([−1, 1]²) and y = f(x; w⁰) + N(0, noise_std²), from one seed.  Inputs
    and noise come from two independent streams of the seed, so row k is the same whatever n is."""
    inputs, noise = (
        np.random.default_rng(s)
        for s in np.random.SeedSequence(_validate.integer("seed", seed, minimum=0)).spawn(2)
    )
    X = relu_inputs(n, inputs)
    y = truth(X) + _validate.positive("noise_std", noise_std) * noise.normal(size=len(X))
    return X, y


def default_beta(n: float) -> float:
    """β = 1/log n, the published experiments' tempering (SPEC 5)."""
    n = _validate.positive("n", n)
    if n <= 1:
        raise ValueError(f"n must be > 1 for β = 1/log n, got {n}")
    return 1.0 / math.log(n)


def relu_model(
    X, y, *, d: int, prior_std: float = 1.0, sigma: float = 1.0, beta: float | None = None, mask=None
) -> pm.Model:
    """Build the tempered posterior of a d-node two-layer ReLU model on (X, y) (module docstring).

    ``beta`` defaults to 1/log n with n the number of selected rows.  Records ``L_n`` =
    (1/n) Σ_k m_k (y_k − f(x_k))² as a Deterministic.
    """
    X = _validate.finite_array("X", X, ndim_min=2)
    y = _validate.finite_array("y", y)
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] < 1:
        raise ValueError(f"X must have shape (N, 2), got {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape (N,) = ({X.shape[0]},), got {y.shape}")
    d = _validate.integer("d", d, minimum=1)
    prior_std = _validate.positive("prior_std", prior_std)
    sigma = _validate.positive("sigma", sigma)
    N = X.shape[0]
    m = _mask(mask, N)
    beta = default_beta(max(m.sum(), 2)) if beta is None else _validate.positive("beta", beta)
    coords = {"node": np.arange(d), "input": np.arange(2), "obs": np.arange(N)}
    with pm.Model(coords=coords) as model:
        Xd = pm.Data("X", X, dims=("obs", "input"))
        yd = pm.Data("y", y, dims="obs")
        md = pm.Data("mask", m, dims="obs")
        bd = pm.Data("beta", np.asarray(beta, dtype=float))
        w = pm.Normal("w", 0.0, prior_std, dims=("node", "input"))
        b = pm.Normal("b", 0.0, prior_std, dims="node")
        q = pm.Normal("q", 0.0, prior_std, dims="node")
        c = pm.Normal("c", 0.0, prior_std)
        f = pt.dot(pt.maximum(pt.dot(Xd, w.T) + b, 0.0), q) + c
        pm.Deterministic("L_n", pt.sum(md * (yd - f) ** 2) / pt.sum(md))
        observed_gaussian("y_obs", f, sigma, yd, md, bd, "obs")
    model.tms_settings = {"model": "relu", "d": d, "prior_std": prior_std, "sigma": sigma}
    return model
