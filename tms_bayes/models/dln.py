"""Deep linear networks (DLNs): the known-λ benchmark of λ̂ at scale (Furman & Lau 2024).

A DLN with widths (H_1, …, H_{M+1}) (input H_1, output H_{M+1}, M layers) maps x ↦ W_M ⋯ W_1 x,
W_l ∈ R^{H_{l+1} × H_l}; the model is y = W_M ⋯ W_1 x + N(0, I) with x ~ N(0, I_{H_1}) and a true
product W* of rank r.  Its population loss (per sample, σ = 1) is

    L(w) = ½ ‖W_M ⋯ W_1 − W*‖²_F + const,

and its learning coefficient is known in closed form (Aoyagi 2024, "Consideration on the learning
efficiency of multiple-layered neural networks with linear units", Neural Networks 172, Theorem 1;
the form used by Furman & Lau 2024, "Estimating the local learning coefficient at scale", Thm 3.1):
with M_k = H_k − r (k = 1 … M+1), take the subset Σ of ℓ + 1 indices of the smallest M_k such that

    max_{σ∈Σ} M_σ < min_{k∉Σ} M_k,   Σ_{σ∈Σ} M_σ ≥ ℓ max_{σ∈Σ} M_σ,   Σ_{σ∈Σ} M_σ < ℓ min_{k∉Σ} M_k

(conditions on the complement hold vacuously when Σ is everything); with S = Σ_{σ∈Σ} M_σ and
a = S − (⌈S/ℓ⌉ − 1) ℓ,

    λ = (−r² + r(H_1 + H_{M+1}))/2 + a(ℓ − a)/(4ℓ) − ℓ(ℓ − 1)/4 · (S/ℓ)² + ½ Σ_{i<j ∈ Σ} M_i M_j.

For M = 2 (one hidden layer) this is reduced-rank regression's λ (Aoyagi & Watanabe 2005,
:func:`tms_bayes.models.known.rrr_learning_coefficient`), checked in the tests over a grid.  λ is the
global learning coefficient; the estimates are taken at a true parameter w* whose layers have
generic full rank except one rank-r layer (:func:`dln_truth`), the setting in which Furman & Lau
measure the local coefficient to agree with it.

Two PyMC builders, with the conventions of the TMS models (``pm.Data`` "n" and "beta", the loss as the
Deterministic ``L_n``): :func:`dln_population_model` (the closed-form L above at sample size n: no
dataset noise, O(Σ H_l H_{l+1} · H) per evaluation whatever n) and :func:`dln_model` (a dataset,
with a padding mask so minibatches and the compiled sweep machinery work unchanged).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .. import _validate
from .tms import _mask, observed_gaussian

__all__ = [
    "dln_learning_coefficient",
    "dln_truth",
    "dln_population_model",
    "dln_model",
    "dln_dimension",
    "product",
]


def _widths(widths) -> tuple[int, ...]:
    w = tuple(_validate.integer("widths", h, minimum=1) for h in widths)
    if len(w) < 2:
        raise ValueError(f"widths must list at least input and output widths, got {widths!r}")
    return w


def dln_dimension(widths) -> int:
    """Number of parameters Σ_l H_l H_{l+1}."""
    w = _widths(widths)
    return int(sum(a * b for a, b in zip(w[:-1], w[1:])))


def dln_learning_coefficient(widths, r: int) -> float:
    """λ of the DLN with ``widths`` (H_1 = input, …, H_{M+1} = output) and a true product of rank ``r``
    (Aoyagi 2024, Theorem 1; formula and conditions in the module docstring)."""
    H = _widths(widths)
    r = _validate.integer("r", r, minimum=0, maximum=min(H))
    m = np.array(H) - r
    if len(H) == 2:  # one layer: a regular model, λ = d/2 whatever r
        return H[0] * H[1] / 2.0
    order = np.argsort(m, kind="stable")
    for size in range(2, len(H) + 1):
        sub, rest = m[order[:size]], m[order[size:]]
        ell = size - 1
        S = int(sub.sum())
        if rest.size and not (sub.max() < rest.min() and S < ell * rest.min()):
            continue
        if S >= ell * sub.max():
            a = S - (math.ceil(S / ell) - 1) * ell
            pairs = (S * S - int((sub * sub).sum())) // 2  # Σ_{i<j} M_i M_j
            lam = (  # exact rational arithmetic; ℓ(ℓ − 1)/4 · (S/ℓ)² = (ℓ − 1) S²/(4ℓ)
                Fraction(-(r**2) + r * (H[0] + H[-1]), 2)
                + Fraction(a * (ell - a), 4 * ell)
                - Fraction((ell - 1) * S * S, 4 * ell)
                + Fraction(pairs, 2)
            )
            return float(lam)
    raise ValueError(
        f"no subset Σ satisfies Aoyagi's conditions for widths {H} and r = {r}"
    )  # pragma: no cover


def dln_truth(widths, r: int, *, seed: int = 0) -> dict:
    """A true parameter {"W1": …, "WM": …} (W_l of shape (H_{l+1}, H_l)) whose product has rank ``r``:
    every layer N(0, 1/H_l) (so the product's scale does not grow with depth) and the first layer
    reduced to rank r (its rows beyond the first r zero; r ≤ every width)."""
    H = _widths(widths)
    r = _validate.integer("r", r, minimum=0, maximum=min(H))
    rng = np.random.default_rng(_validate.integer("seed", seed, minimum=0))
    layers = {}
    for i, (h_in, h_out) in enumerate(zip(H[:-1], H[1:]), start=1):
        W = rng.normal(size=(h_out, h_in)) / math.sqrt(h_in)
        if i == 1:
            W[r:] = 0.0
        layers[f"W{i}"] = W
    return layers


def product(layers: dict) -> np.ndarray:
    """W_M ⋯ W_1 of a parameter dict (numpy)."""
    out = None
    for i in range(1, len(layers) + 1):
        W = np.asarray(layers[f"W{i}"])
        out = W if out is None else W @ out
    return out


def _layers(H, prior_std):
    return [
        pm.Normal(f"W{i}", 0.0, prior_std, shape=(h_out, h_in))
        for i, (h_in, h_out) in enumerate(zip(H[:-1], H[1:]), start=1)
    ]


def _product(layers):
    out = layers[0]
    for W in layers[1:]:
        out = pt.dot(W, out)
    return out


def dln_population_model(
    widths, truth: dict, *, n: int, prior_std: float = 1.0, beta: float = 1.0
) -> pm.Model:
    """The DLN posterior in the infinite-data limit: log density −nβ L(w) − ½‖w‖²/prior_std², with
    L(w) = ½‖W_M ⋯ W_1 − W*‖²_F (module docstring), W* = the product of ``truth``'s layers."""
    H = _widths(widths)
    n = _validate.integer("n", n, minimum=2)
    target = product(truth)
    if target.shape != (H[-1], H[0]):
        raise ValueError(f"truth's product must be ({H[-1]}, {H[0]}) for widths {H}, got {target.shape}")
    with pm.Model() as model:
        nd = pm.Data("n", np.asarray(float(n)))
        bd = pm.Data("beta", np.asarray(_validate.positive("beta", beta)))
        Wstar = pm.Data("W_star", target)
        L = 0.5 * pt.sum((_product(_layers(H, _validate.positive("prior_std", prior_std))) - Wstar) ** 2)
        pm.Deterministic("L_n", L)
        pm.Potential("loglik", -bd * nd * L)
    model.dln_settings = {"model": "dln-population", "widths": H}
    return model


def dln_model(X, Y, widths, *, prior_std: float = 1.0, beta: float = 1.0, mask=None) -> pm.Model:
    """y = W_M ⋯ W_1 x + N(0, I) on a dataset X (n, H_1), Y (n, H_{M+1})."""
    H = _widths(widths)
    X, Y = _validate.finite_array("X", X), _validate.finite_array("Y", Y)
    if X.ndim != 2 or Y.ndim != 2 or X.shape != (len(Y), H[0]) or Y.shape[1] != H[-1]:
        raise ValueError(f"X must be (n, {H[0]}) and Y (n, {H[-1]}) for widths {H}, got {X.shape}, {Y.shape}")
    with pm.Model() as model:
        Xd, Yd = pm.Data("X", X), pm.Data("Y", Y)
        md = pm.Data("mask", _mask(mask, len(Y)))
        bd = pm.Data("beta", np.asarray(_validate.positive("beta", beta)))
        f = pt.dot(Xd, _product(_layers(H, _validate.positive("prior_std", prior_std))).T)
        observed_gaussian("Y_obs", f, 1.0, Yd, md, bd, None)
    model.dln_settings = {"model": "dln", "widths": H}
    return model
