"""The TMS loss: empirical L_n and the closed-form potential L (SPEC 1, 1.1).

Model  f(x; W, b) = ReLU(WᵀW x + b),  W ∈ R^{r×c}, b ∈ R^c.
Loss   L_n(W, b) = (1/n) Σ_k ‖x_k − f(x_k; W, b)‖²   (unhalved, summed over the c outputs).
Data   x = μ e_i with i ~ U{1..c}, μ ~ U[0, 1]  (the high-sparsity limit).

The potential L = E[L_n] is (Lemma 3.1 of the TMS paper)

    L(W, b) = (1/c) Σ_i Σ_j ∫₀¹ (μ δ_ij − ReLU(μ a_ij + b_j))² dμ,     a_ij = W_i · W_j,

where i indexes the active input and j the output.  Each integrand is piecewise quadratic in μ with
one kink at μ = −b_j / a_ij.  Writing t = δ_ij and [u₀, u₁] ⊂ [0, 1] for the interval on which
μ a_ij + b_j > 0, each term is

    t²/3 + P(u₁) − P(u₀),   P(u) = ((t − a)² − t²) u³/3 − (t − a) b u² + b² u,

the integral of ((t − a)μ − b)² − t²μ² over the active interval added to the all-inactive value.
This is the same closed form as SPEC 1.1's H_i (H = 3c L), written once for every (i, j) so that the
two branches of the paper's case split become one expression.  Because the integrand vanishes at the
kink, L is C¹ wherever a_ij ≠ 0 and the derivative of the clipped kink position never contributes.

Every formula is written once against an array namespace ``xp`` (numpy or jax.numpy), so the numpy
functions used for tables and the JAX functions used for gradients and sampling share one definition.
Divisions are guarded with ``where`` and a safe denominator, so gradients are NaN-free everywhere,
including at a_ij = 0 and at dead columns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import _validate
from .._jax import jax, jnp

__all__ = [
    "TMSParams",
    "potential",
    "potential_jax",
    "empirical_loss",
    "empirical_loss_jax",
    "potential_grad",
    "potential_hessian",
    "pack",
    "unpack",
]


# ---------------------------------------------------------------------------------------------
# One definition of the math, for any array namespace.
# ---------------------------------------------------------------------------------------------
def _gram(xp, W):
    """a[..., i, j] = W_i · W_j for W of shape (..., r, c)."""
    return xp.einsum("...ri,...rj->...ij", W, W)


def _potential(xp, W, b):
    """Closed-form L(W, b) (module docstring); W (..., r, c), b (..., c) -> (...)."""
    c = W.shape[-1]
    a = _gram(xp, W)  # (..., i, j)
    beta = b[..., None, :]  # bias of output j, broadcast over inputs i
    t = xp.eye(c, dtype=a.dtype)
    pos, neg = a > 0, a < 0
    safe_a = xp.where(pos | neg, a, 1.0)
    kink = xp.clip(-beta / safe_a, 0.0, 1.0)
    always_on = xp.where(beta > 0, 1.0, 0.0)  # a_ij == 0: active on all of [0, 1] iff b_j > 0
    u0 = xp.where(pos, kink, 0.0)
    u1 = xp.where(pos, 1.0, xp.where(neg, kink, always_on))
    s = t - a

    def P(u):
        return (s * s - t * t) * u**3 / 3.0 - s * beta * u**2 + beta**2 * u

    terms = t / 3.0 + P(u1) - P(u0)
    return terms.sum(axis=(-2, -1)) / c


def _empirical_loss(xp, W, b, X):
    """L_n(W, b) = (1/n) Σ_k ‖x_k − ReLU(WᵀW x_k + b)‖²; X (n, c) -> (...)."""
    G = _gram(xp, W)  # (..., c, c), symmetric
    out = xp.maximum(xp.einsum("nc,...cd->...nd", X, G) + b[..., None, :], 0.0)
    return ((X - out) ** 2).sum(axis=-1).mean(axis=-1)


# ---------------------------------------------------------------------------------------------
# Public numpy API (validated) and JAX API (traceable, differentiable).
# ---------------------------------------------------------------------------------------------
def _check_wb(W, b) -> tuple[np.ndarray, np.ndarray]:
    W = _validate.finite_array("W", W, ndim_min=2)
    b = _validate.finite_array("b", b, ndim_min=1)
    if W.shape[-2] < 1 or W.shape[-1] < 1:
        raise ValueError(f"W must have shape (..., r, c) with r >= 1 and c >= 1, got {W.shape}")
    if b.shape[-1] != W.shape[-1] or b.shape[:-1] != W.shape[:-2]:
        raise ValueError(
            f"b must have shape (..., c) matching W of shape (..., r, c) = {W.shape}; "
            f"got b of shape {b.shape}"
        )
    return W, b


def potential(W, b) -> np.ndarray | float:
    """Closed-form TMS potential L(W, b) (Lemma 3.1; module docstring), float64.

    ``W`` has shape (..., r, c) and ``b`` shape (..., c); leading dimensions are batched.
    Raises ``ValueError`` for non-finite entries or mismatched shapes.
    """
    W, b = _check_wb(W, b)
    out = _potential(np, W, b)
    return float(out) if np.ndim(out) == 0 else out


def potential_jax(W, b):
    """The same closed-form potential for JAX arrays: jit-, vmap- and grad-compatible.

    No value checks are made (values may be tracers); use :func:`potential` at a boundary.
    """
    return _potential(jnp, jnp.asarray(W), jnp.asarray(b))


def empirical_loss(W, b, X) -> np.ndarray | float:
    """Empirical loss L_n(W, b) on inputs ``X`` of shape (n, c): (1/n) Σ_k ‖x_k − f(x_k)‖²
    (SPEC 1)."""
    W, b = _check_wb(W, b)
    X = _validate.finite_array("X", X, ndim_min=2)
    if X.ndim != 2 or X.shape[1] != W.shape[-1] or X.shape[0] < 1:
        raise ValueError(f"X must have shape (n, c) with n >= 1 and c = {W.shape[-1]}, got {X.shape}")
    out = _empirical_loss(np, W, b, X)
    return float(out) if np.ndim(out) == 0 else out


def empirical_loss_jax(W, b, X):
    """:func:`empirical_loss` for JAX arrays (traceable, differentiable)."""
    return _empirical_loss(jnp, jnp.asarray(W), jnp.asarray(b), jnp.asarray(X))


# ---------------------------------------------------------------------------------------------
# Flat parameter vectors, gradients and Hessians (d = rc + c coordinates: W row-major, then b).
# ---------------------------------------------------------------------------------------------
class TMSParams(NamedTuple):
    """The TMS parameters as one pytree — W (r, c), b (c) — what SGD trains; :func:`pack` flattens them
    (W row-major, then b), :func:`unpack` takes a flat vector back."""

    W: object
    b: object


def pack(W, b):
    """Flatten (W, b) into w ∈ R^{rc + c}: W row-major, then b (the layout of all Hessians here)."""
    xp = jnp if isinstance(W, jax.Array) else np
    return xp.concatenate([xp.reshape(W, (-1,)), xp.reshape(b, (-1,))])


def unpack(w, r: int, c: int):
    """Inverse of :func:`pack`."""
    return w[: r * c].reshape(r, c), w[r * c :]


def _flat_potential(w, r, c):
    W, b = unpack(w, r, c)
    return potential_jax(W, b)


_grad_flat = jax.jit(jax.grad(_flat_potential), static_argnums=(1, 2))
_hess_flat = jax.jit(jax.hessian(_flat_potential), static_argnums=(1, 2))


def potential_grad(W, b) -> tuple[np.ndarray, np.ndarray]:
    """∇L at (W, b), returned as (∂L/∂W, ∂L/∂b) numpy arrays (exact, via JAX autodiff in
    float64)."""
    W, b = _check_wb(W, b)
    if W.ndim != 2:
        raise ValueError(f"potential_grad takes a single point: W must have shape (r, c), got {W.shape}")
    r, c = W.shape
    g = np.asarray(_grad_flat(jnp.asarray(pack(W, b)), r, c))
    gW, gb = unpack(g, r, c)
    return gW, gb


def potential_hessian(W, b) -> np.ndarray:
    """Hessian of L at (W, b) in the :func:`pack` layout, shape (rc + c, rc + c).

    At points where L is not C² (the 4-gon family sits on kinks a_ij = 0, b_j = 0) autodiff returns
    the Hessian of the branch selected by the ``where`` guards: a one-sided value, not a derivative.
    """
    W, b = _check_wb(W, b)
    if W.ndim != 2:
        raise ValueError(f"potential_hessian takes a single point: W must have shape (r, c), got {W.shape}")
    r, c = W.shape
    return np.asarray(_hess_flat(jnp.asarray(pack(W, b)), r, c))
