"""The same posterior sweep three ways, side by side in one process:

1. tms-bayes: the compile-once blackjax NUTS engine (``tms_bayes.inference.sweep``), both chain methods,
   chains sharded over the cores (``tms_bayes.configure()``) and, for comparison, on one device;
2. a loop of ``pm.sample(nuts_sampler="numpyro")`` (PyMC's JAX path: one new JAX program per job);
3. a loop of ``pm.sample()`` with PyMC's default NUTS sampler.

Same model (TMS, c = 6 by default), same sample sizes (≥ 6), same datasets, same chains, tune and
draws.  Printed per method: wall time, compile time (where it can be separated), total bulk ESS of
L_n over the jobs, ESS/s, and the ratio of ESS/s to each peer.  Also printed: the cost of one
log-density gradient per chain against a FLOP estimate of the model.

Usage:  python benchmarks/sweep_speed.py [--n 200:1200:200] [--chains 4] [--tune 200] [--draws 200]
        [--skip-pymc-default] [--skip-numpyro]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import arviz as az
import numpy as np

warnings.filterwarnings("ignore")

import tms_bayes  # noqa: E402

tms_bayes.configure()  # one XLA device per core before JAX starts, as the CLI does: chains shard across cores

from tms_bayes._jax import jax, jnp  # noqa: E402
from tms_bayes.cli import parse_grid  # noqa: E402
from tms_bayes.inference.compile import as_jax, compile_model  # noqa: E402
from tms_bayes.inference.sweep import SweepSettings, build_model, dataset, run_sweep  # noqa: E402


def ess_of(L):
    return float(az.ess(np.asarray(L), method="bulk"))


def ours(settings, chain_method, devices=None):
    st = SweepSettings(**{**settings.to_dict(), "chain_method": chain_method})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sweep = run_sweep(st, tmp, progress=False, log=lambda *_: None, devices=devices)
        wall = time.perf_counter() - t0
        ess = sum(ess_of(sweep.load(n, s).posterior["L_n"].values) for n, s in sweep.jobs())
        depth = np.mean([sweep.load(n, s).sample_stats["n_steps"].values.mean() for n, s in sweep.jobs()])
    from tms_bayes.inference.nuts import shard_count

    shards = shard_count(settings.chains, devices)
    return {"method": f"tms-bayes ({chain_method}, {shards} shard{'s' if shards > 1 else ''})", "wall": wall, "compile": sweep.timings["compile_s"], "ess": ess, "steps": depth}


def pymc_loop(settings, sampler):
    import pymc as pm

    wall, ess = 0.0, 0.0
    for s in range(settings.seeds):
        data = dataset(settings, s)
        for n in settings.n:
            model = build_model(settings, data, n, padded=False)
            kwargs = dict(draws=settings.draws, tune=settings.tune, chains=settings.chains, random_seed=1000 * s + n, progressbar=False, compute_convergence_checks=False)
            t0 = time.perf_counter()
            with model:
                if sampler == "numpyro":
                    idata = pm.sample(nuts_sampler="numpyro", nuts_sampler_kwargs={"chain_method": "vectorized"}, **kwargs)
                else:
                    idata = pm.sample(cores=1, **kwargs)
            wall += time.perf_counter() - t0
            ess += ess_of(idata.posterior["L_n"].values)
    name = 'pm.sample(nuts_sampler="numpyro") loop' if sampler == "numpyro" else "pm.sample() default NUTS loop"
    return {"method": name, "wall": wall, "compile": float("nan"), "ess": ess, "steps": float("nan")}


def gradient_cost(settings):
    """Seconds per log-density gradient per chain (single chain, and vmapped over 64), and FLOPs."""
    model = build_model(settings, dataset(settings, 0), settings.n_max)
    cm = compile_model(model)
    data = as_jax(cm.data)
    g1 = jax.jit(jax.grad(cm.logp))
    g64 = jax.jit(jax.vmap(jax.grad(cm.logp), in_axes=(0, None)))
    w1, w64 = jnp.full(cm.dim, 0.3), jnp.full((64, cm.dim), 0.3)

    def t(f, *a, k=100):
        f(*a).block_until_ready()
        t0 = time.perf_counter()
        for _ in range(k):
            r = f(*a)
        r.block_until_ready()
        return (time.perf_counter() - t0) / k

    N, c, r = settings.n_max, settings.c, settings.r
    # forward: G = WᵀW (2rc²), X·G (2Nc²), +b, relu, residual², sums (~5Nc); backward ≈ 2× forward
    flops = 3 * (2 * r * c * c + 2 * N * c * c + 5 * N * c)
    return t(g1, w1, data), t(g64, w64, data) / 64, flops


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="200:1200:200")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--skip-numpyro", action="store_true")
    ap.add_argument("--skip-pymc-default", action="store_true")
    args = ap.parse_args()
    settings = SweepSettings(n=tuple(int(v) for v in parse_grid(args.n)), seeds=args.seeds, chains=args.chains, tune=args.tune, draws=args.draws)
    print(f"TMS c={settings.c} r={settings.r}; n={list(settings.n)}; seeds={settings.seeds}, chains={settings.chains}, tune={settings.tune}, draws={settings.draws}; JAX backend {jax.default_backend()}")
    header = f"{'method':<42}{'wall s':>9}{'compile s':>10}{'ESS(L_n)':>10}{'ESS/s':>9}{'leapfrog/draw':>14}{'our wall ×':>11}{'our ESS/s ×':>12}"
    print()
    print(header, flush=True)
    runs = [lambda: ours(settings, "sequential"), lambda: ours(settings, "sequential", devices=1), lambda: ours(settings, "vectorized")]
    if not args.skip_numpyro:
        runs.append(lambda: pymc_loop(settings, "numpyro"))
    if not args.skip_pymc_default:
        runs.append(lambda: pymc_loop(settings, "pymc"))
    best = None
    for run in runs:
        row = run()
        best = best or row
        ess_s = row["ess"] / row["wall"]
        print(
            f"{row['method']:<42}{row['wall']:>9.1f}{row['compile']:>10.1f}{row['ess']:>10.0f}{ess_s:>9.2f}{row['steps']:>14.1f}"
            f"{row['wall'] / best['wall']:>11.2f}{(best['ess'] / best['wall']) / ess_s:>12.2f}",
            flush=True,
        )
    g1, g64, flops = gradient_cost(settings)
    print()
    print(f"one log-density gradient at N={settings.n_max}: {g1 * 1e6:.1f} µs (single chain), {g64 * 1e6:.1f} µs per chain (vmapped ×64)")
    print(f"model FLOPs per gradient ≈ {flops / 1e3:.0f} kFLOP -> {flops / g1 / 1e9:.2f} GFLOP/s single, {flops / g64 / 1e9:.2f} GFLOP/s vmapped")


if __name__ == "__main__":
    main()
