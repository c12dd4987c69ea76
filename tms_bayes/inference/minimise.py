"""Local minimisation kept inside a phase (issue 13: minimisers must not walk out of their phase).

BFGS (exact JAX gradients) from a starting point; after every iteration the iterate is checked
against the phase's region (:mod:`tms_bayes.theory.regions`).  If an iterate leaves it, the run stops
and the last iterate inside is returned, flagged ``left_phase``: a 5-gon edge point from which BFGS
would slide into 5+ is reported as such instead of silently becoming a 5+ minimum.  Used by
``estimate_llc(refine=True)`` and by the per-phase minima behind λ from the growth of F_n.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .._jax import jax, jnp
from ..theory import regions
from ..theory.critical_points import parse_phase

__all__ = ["minimise_in_phase", "tms_phase_indicator"]


def tms_phase_indicator(cm, phase: str) -> Callable:
    """w (flat, in ``cm``'s layout: W and b free, or W a Deterministic of a gauge) ↦ bool: inside
    ``phase``'s region."""
    k, sigma, phi = parse_phase(phase)
    data = {k_: jnp.asarray(v) for k_, v in cm.data.items()}

    def indicator(w):
        p = cm.point(w, data)
        return regions.in_phase_xp(jnp, p["W"], p["b"], k, sigma, phi)

    test = jax.jit(indicator)
    return lambda w: bool(test(jnp.asarray(w)))


def minimise_in_phase(
    value_and_grad: Callable,
    w0,
    inside: Callable | None = None,
    *,
    args: tuple = (),
    gtol: float = 1e-9,
    maxiter: int = 3000,
) -> tuple[np.ndarray, float, dict]:
    """(ŵ, f(ŵ), info) from BFGS on ``value_and_grad`` ((w, *args) ↦ (value, gradient), JAX; pass it
    jitted once and vary ``args``, so that repeated calls compile nothing) started at ``w0``, stopped at
    the last iterate inside ``inside`` if one leaves it (module docstring).  info: ``left_phase``
    (bool), ``iterations``, ``moved`` (‖ŵ − w0‖)."""
    from scipy import optimize

    w0 = np.asarray(w0, dtype=float)
    if inside is not None and not inside(w0):
        raise ValueError("the starting point is not inside the phase it is to be kept in")
    state = {"last": w0, "left": False, "iterations": 0}

    def fun(w):
        v, g = value_and_grad(jnp.asarray(w), *args)
        return float(v), np.asarray(g, dtype=float)

    def callback(intermediate_result):
        state["iterations"] += 1
        x = np.asarray(intermediate_result.x, dtype=float)
        if inside is not None and not inside(x):
            state["left"] = True
            raise StopIteration
        state["last"] = x

    res = optimize.minimize(
        fun, w0, jac=True, method="BFGS", callback=callback, options={"gtol": gtol, "maxiter": maxiter}
    )
    if inside is not None and not inside(np.asarray(res.x)):  # the final step left (no callback after it)
        state["left"] = True
    w = state["last"] if state["left"] else np.asarray(res.x)
    value = fun(w)[0]
    return (
        w,
        value,
        {
            "left_phase": state["left"],
            "iterations": state["iterations"],
            "moved": float(np.linalg.norm(w - w0)),
        },
    )
