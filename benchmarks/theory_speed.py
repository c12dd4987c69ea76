"""Closed-form TMS potential vs a Monte Carlo L_n estimate of equal accuracy.

Times, at one random point (r = 2, c = 6 by default):
  - the closed-form L (numpy, and JAX jitted),
  - its gradient (JAX jitted),
  - a Monte Carlo estimate L_n (JAX jitted, data pre-generated) with n chosen so that its standard
    error equals a target relative accuracy (default 1e-4 of L; the per-sample variance is measured
    first).  Where that n is too large to hold in memory, L_n is timed on a chunk and scaled linearly
    (marked 'extrapolated').  The closed form is exact to float64 rounding (~1e-15 relative, see
    tests/test_potential.py), so the ratio at 1e-4 understates its advantage.

Usage:  python benchmarks/theory_speed.py [--c 6] [--r 2] [--rel-accuracy 1e-4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tms_bayes._jax import jax, jnp
from tms_bayes.models.data import tms_inputs
from tms_bayes.theory import empirical_loss_jax, potential, potential_jax

MAX_CHUNK = 2_000_000


def best_time(fn, repeats=7, number=None):
    """Best-of-``repeats`` seconds per call, with ``number`` calls per repeat (auto-chosen)."""
    fn()  # warm up / compile
    if number is None:
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-7)
        number = max(1, int(0.05 / one))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--c", type=int, default=6)
    ap.add_argument("--r", type=int, default=2)
    ap.add_argument("--rel-accuracy", type=float, default=1e-4)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    W = rng.normal(size=(args.r, args.c))
    b = 0.5 * rng.normal(size=args.c)
    L = potential(W, b)

    Wj, bj = jnp.asarray(W), jnp.asarray(b)
    pot = jax.jit(potential_jax)
    grad = jax.jit(jax.grad(potential_jax, argnums=(0, 1)))
    t_np = best_time(lambda: potential(W, b))
    t_jax = best_time(lambda: pot(Wj, bj).block_until_ready())
    t_grad = best_time(lambda: jax.block_until_ready(grad(Wj, bj)))

    # Per-sample variance at this point -> the n giving the target standard error.
    X = tms_inputs(200_000, args.c, seed=1)
    per = ((X - np.maximum(X @ (W.T @ W) + b, 0.0)) ** 2).sum(1)
    var = per.var(ddof=1)
    n_eq = int(np.ceil(var / (args.rel_accuracy * L) ** 2))
    chunk = min(n_eq, MAX_CHUNK)
    Xc = jnp.asarray(tms_inputs(chunk, args.c, seed=2))
    mc = jax.jit(empirical_loss_jax)
    t_chunk = best_time(lambda: mc(Wj, bj, Xc).block_until_ready(), repeats=5)
    t_mc = t_chunk * n_eq / chunk
    mc_grad = jax.jit(jax.grad(empirical_loss_jax, argnums=(0, 1)))
    t_mc_grad = best_time(lambda: jax.block_until_ready(mc_grad(Wj, bj, Xc)), repeats=3) * n_eq / chunk

    note = "" if n_eq <= MAX_CHUNK else f" (extrapolated from n={chunk:,})"
    print(f"TMS potential at one random point, r={args.r}, c={args.c}; L = {L:.6f}; backend {jax.default_backend()}")
    print(f"Monte Carlo target: standard error {args.rel_accuracy:g}·L  ->  n = {n_eq:,} samples (per-sample sd {np.sqrt(var):.4f})")
    print()
    print(f"{'what':<40}{'time':>14}{'ratio MC/closed':>18}")
    print(f"{'closed-form L, numpy':<40}{t_np * 1e6:>11.1f} µs{'':>18}")
    print(f"{'closed-form L, JAX jit':<40}{t_jax * 1e6:>11.1f} µs{t_mc / t_jax:>17.0f}x")
    print(f"{'closed-form ∇L, JAX jit':<40}{t_grad * 1e6:>11.1f} µs{t_mc_grad / t_grad:>17.0f}x")
    print(f"{'Monte Carlo L_n, JAX jit':<40}{t_mc * 1e3:>11.1f} ms")
    print(f"{'Monte Carlo ∇L_n, JAX jit':<40}{t_mc_grad * 1e3:>11.1f} ms")
    if note:
        print(f"Monte Carlo times{note}: linear in n.")


if __name__ == "__main__":
    main()
