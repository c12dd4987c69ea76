"""The same posterior sweep with our engine and the strongest peers, side by side in one process:

1. tms-bayes: the compile-once blackjax NUTS engine (``tms_bayes.inference.sweep``), one job per core
   at once (``tms_bayes.configure()``), in each parameterisation × mass matrix (``--variants``);
2. nutpie (``compile_pymc_model(model, backend="numba")`` once, then ``.with_data(X=…, mask=…, beta=…)``
   per job: it also compiles once per sweep);
3. a loop of ``pm.sample(nuts_sampler="numpyro")`` (PyMC's JAX path: one new JAX program per job);
4. a loop of ``pm.sample()`` with PyMC's default NUTS sampler.

Same PyMC model for all (``--gauge``: the SO(2)-gauge-fixed TMS model for every method, or the unfixed
one for every method; our own variants list which they use), same sample sizes, datasets, chains, tune
and draws.  **Starts**: ``--init prior`` (default) starts every chain of every method from a draw of the
prior — ours and the PyMC loops from the very same draws (``sweep.prior_start``, given to ``pm.sample``
as ``initvals`` without jitter), nutpie from its own prior draws (``default_initialization_strategy=
"prior"``: it takes one start vector, not one per chain); ``--init default`` leaves each peer its own
default (nutpie: PyMC's support point with jitter; PyMC: ``jitter+adapt_diag``).

Printed per method: wall time (compile included), compile time where it can be separated, leapfrog
steps per draw, bulk and tail ESS per second summed over the jobs of L_n and of the smallest sorted
column norm of W, the smallest bulk ESS/s over all sorted column norms, the largest R̂ over jobs and
those quantities (all invariant under the model's symmetries, so they mean the same in every
parameterisation), and each method's ESS/s of L_n and of the smallest column norm as a ratio to the
first row (our default).

**Compilation cache** (``--cache``): ``tms_bayes.configure()`` keeps XLA's compiled programs on disk
(:mod:`tms_bayes._devices`), so a second process running the same sweep loads the sampler instead of
compiling it.  ``cold`` (default) points that cache at a new empty directory: every program of ours is
compiled in the timed run.  ``warm`` first runs every variant of ours, untimed, in a separate process
that fills a new cache directory, so the timed runs are those of a new process on a machine that has
run these sweeps before (tracing, lowering and every one-time cost of a process still counted).  A
cache of the user's own for JAX (``JAX_COMPILATION_CACHE_DIR``) overrides ours: unset it for a cold run.  PyMC's own compiled C code (pytensor's
compile directory, ``~/.pytensor``) is cached across processes too and is never cleared here.

Usage:  python benchmarks/sweep_speed.py [--n 200:1200:200] [--chains 4] [--tune 200] [--draws 200]
        [--gauge so2|none] [--init prior|default] [--variants so2:diag,none:diag,so2:diag:vectorized]
        [--skip nutpie,numpyro,pymc] [--cache cold|warm]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
import warnings

import arviz as az
import numpy as np

warnings.filterwarnings("ignore")

if "--fill-cache" in sys.argv:  # the warm run's untimed child: the parent's cache directory
    _CACHE = None
else:
    _CACHE = tempfile.TemporaryDirectory(prefix="tms-bayes-bench-cache-")
    os.environ["TMS_BAYES_JAX_CACHE"] = _CACHE.name  # empty: --cache (module docstring)

import tms_bayes  # noqa: E402

tms_bayes.configure()  # one XLA device per core before JAX starts, as the CLI does: a job per core at once

from tms_bayes.cli import parse_grid  # noqa: E402
from tms_bayes.inference.sweep import SweepSettings, build_model, dataset, prior_start, run_sweep  # noqa: E402

PEERS = ("nutpie", "numpyro", "pymc")


def invariants(W, L) -> dict:
    """(chain, draw) arrays of the invariants the table reports, from W (chain, draw, 2, c) and L_n."""
    norms = np.sort(np.linalg.norm(np.asarray(W), axis=-2), axis=-1)
    return {"L": np.asarray(L), "norms": norms}


class Tally:
    """ESS, R̂ and leapfrog steps accumulated over the jobs of one method."""

    def __init__(self):
        self.ess = {"L bulk": 0.0, "L tail": 0.0, "nmin bulk": 0.0, "nmin tail": 0.0}
        self.norm_bulk = None
        self.rhat = 1.0
        self.steps = []

    def add(self, inv: dict, n_steps):
        L, norms = inv["L"], inv["norms"]
        self.ess["L bulk"] += float(az.ess(L, method="bulk"))
        self.ess["L tail"] += float(az.ess(L, method="tail"))
        self.ess["nmin bulk"] += float(az.ess(norms[..., 0], method="bulk"))
        self.ess["nmin tail"] += float(az.ess(norms[..., 0], method="tail"))
        per_norm = np.array([float(az.ess(norms[..., k], method="bulk")) for k in range(norms.shape[-1])])
        self.norm_bulk = per_norm if self.norm_bulk is None else self.norm_bulk + per_norm
        rh = [float(az.rhat(L))] + [float(az.rhat(norms[..., k])) for k in range(norms.shape[-1])]
        self.rhat = max(self.rhat, *rh)
        if n_steps is not None:
            self.steps.append(float(np.mean(n_steps)))

    def row(self, method, wall, compile_s) -> dict:
        out = {"method": method, "wall": wall, "compile": compile_s, "rhat": self.rhat}
        out["steps"] = float(np.mean(self.steps)) if self.steps else float("nan")
        out.update({k: v / wall for k, v in self.ess.items()})
        out["norms min bulk"] = float(self.norm_bulk.min()) / wall
        return out


def ours(settings, gauge, mass_matrix, chain_method="sequential"):
    st = SweepSettings(
        **{**settings.to_dict(), "gauge": gauge, "mass_matrix": mass_matrix, "chain_method": chain_method}
    )
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sweep = run_sweep(st, tmp, progress=False, log=lambda *_: None)
        wall = time.perf_counter() - t0
        for n, s in sweep.jobs():
            idata = sweep.load(n, s)
            tally.add(invariants(idata.posterior["W"], idata.posterior["L_n"]), idata.sample_stats["n_steps"])
    method = "" if chain_method == "sequential" else f", {chain_method}"
    return tally.row(
        f"tms-bayes ({gauge}, {mass_matrix}{method})", wall, sweep.timings.get("compile_s", np.nan)
    )


def _initvals(settings, model, n, data_seed) -> list[dict]:
    """Our prior starts for job (n, seed) as PyMC initvals (constrained values by variable name)."""
    from tms_bayes.inference.compile import compile_model

    cm = compile_model(model)
    flat = prior_start(settings, cm, np.random.default_rng([data_seed, n, 7]))
    points = cm.points(flat, cm.data)  # free variables in their own (constrained) space, by name
    return [{rv: points[rv][i] for rv in cm.rv_names} for i in range(len(flat))]


def pymc_loop(settings, sampler, init):
    import pymc as pm

    tally, wall = Tally(), 0.0
    for s in range(settings.seeds):
        data = dataset(settings, s)
        for n in settings.n:
            model = build_model(settings, data, n, padded=False)
            kwargs = dict(
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                random_seed=1000 * s + n,
                progressbar=False,
                compute_convergence_checks=False,
            )
            if init == "prior":
                kwargs["initvals"] = _initvals(settings, model, n, settings.data_seed(s))
            t0 = time.perf_counter()
            with model, contextlib.redirect_stdout(io.StringIO()):
                if sampler == "numpyro":
                    extra = {"chain_method": "vectorized"}
                    if init == "prior":
                        extra["jitter"] = False
                    idata = pm.sample(nuts_sampler="numpyro", nuts_sampler_kwargs=extra, **kwargs)
                else:
                    idata = pm.sample(
                        cores=1, init="adapt_diag" if init == "prior" else "jitter+adapt_diag", **kwargs
                    )
            wall += time.perf_counter() - t0
            tally.add(
                invariants(idata.posterior["W"].values, idata.posterior["L_n"].values),
                idata.sample_stats["n_steps"].values if "n_steps" in idata.sample_stats else None,
            )
    name = (
        'pm.sample(nuts_sampler="numpyro") loop' if sampler == "numpyro" else "pm.sample() default NUTS loop"
    )
    return tally.row(name, wall, float("nan"))


def nutpie_sweep(settings, init):
    """nutpie, compiled once on the padded model, one ``with_data`` per job."""
    import nutpie

    tally = Tally()
    t0 = time.perf_counter()
    strategy = "prior" if init == "prior" else "support_point"
    compiled = nutpie.compile_pymc_model(
        build_model(settings, dataset(settings, 0), settings.n_max),
        backend="numba",
        default_initialization_strategy=strategy,
    )
    compile_s = time.perf_counter() - t0
    for s in range(settings.seeds):
        data = dataset(settings, s)
        for n in settings.n:
            job = compiled.with_data(
                **data,
                mask=(np.arange(settings.n_max) < n).astype(float),
                beta=np.asarray(settings.beta_for(n)),
            )
            idata = nutpie.sample(
                job,
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                seed=1000 * s + n,
                progress_bar=False,
                save_warmup=False,
            )
            post = idata.posterior
            tally.add(invariants(post["W"].values, post["L_n"].values), idata.sample_stats["n_steps"].values)
    wall = time.perf_counter() - t0
    return tally.row(f"nutpie (numba, with_data, {init} starts)", wall, compile_s)


COLUMNS = [
    ("wall s", "wall", ".1f"),
    ("compile s", "compile", ".1f"),
    ("leapfrog/draw", "steps", ".1f"),
    ("L bulk/s", "L bulk", ".1f"),
    ("L tail/s", "L tail", ".1f"),
    ("nmin bulk/s", "nmin bulk", ".1f"),
    ("nmin tail/s", "nmin tail", ".1f"),
    ("norms min/s", "norms min bulk", ".1f"),
    ("max R̂", "rhat", ".3f"),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="200:1200:200")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--gauge", choices=("so2", "none"), default="so2", help="the model every peer samples")
    ap.add_argument("--init", choices=("prior", "default"), default="prior")
    ap.add_argument(
        "--variants",
        default="so2:diag,so2:dense,none:diag,none:dense,so2:diag:vectorized",
        help="ours: gauge:mass[:chain method],… (the first is the ratios' reference)",
    )
    ap.add_argument("--skip", default="", help=f"peers to leave out, of {','.join(PEERS)}")
    ap.add_argument("--cache", choices=("cold", "warm"), default="cold", help="our compilation cache")
    ap.add_argument("--fill-cache", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    skip = {p for p in args.skip.split(",") if p}
    if skip - set(PEERS):
        raise SystemExit(f"--skip takes {', '.join(PEERS)}; got {', '.join(sorted(skip - set(PEERS)))}")
    base = SweepSettings(
        n=tuple(int(v) for v in parse_grid(args.n)),
        seeds=args.seeds,
        chains=args.chains,
        tune=args.tune,
        draws=args.draws,
        gauge=args.gauge,
    )
    print(
        f"TMS c={base.c} r={base.r}; n={list(base.n)}; seeds={base.seeds}, chains={base.chains}, "
        f"tune={base.tune}, draws={base.draws}; peers sample the gauge={args.gauge} model; {args.init} starts"
    )
    variants = [v for v in args.variants.split(",") if v]
    if args.fill_cache:
        for v in variants:
            ours(base, *v.split(":"))
        return
    if args.cache == "warm":  # another process fills it: this one pays every one-time cost itself
        import subprocess

        print("filling the compilation cache in a separate process (untimed) …", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, *sys.argv, "--fill-cache"], check=True)
    print(f"our compilation cache: {args.cache}")
    runs = [lambda v=v: ours(base, *v.split(":")) for v in variants]
    if "nutpie" not in skip:
        runs.append(lambda: nutpie_sweep(base, args.init))
    if "numpyro" not in skip:
        runs.append(lambda: pymc_loop(base, "numpyro", args.init))
    if "pymc" not in skip:
        runs.append(lambda: pymc_loop(base, "pymc", args.init))
    header = (
        f"{'method':<44}"
        + "".join(f"{h:>14}" for h, _, _ in COLUMNS)
        + f"{'L ESS/s ×':>11}{'nmin ESS/s ×':>13}"
    )
    print()
    print(header, flush=True)
    first = None
    for run in runs:
        row = run()
        first = first or row
        cells = "".join(f"{row[k]:>14{fmt}}" for _, k, fmt in COLUMNS)
        ratio_L = row["L bulk"] / first["L bulk"]
        ratio_n = row["nmin bulk"] / first["nmin bulk"]
        print(f"{row['method']:<44}{cells}{ratio_L:>11.2f}{ratio_n:>13.2f}", flush=True)
    print()
    print("ratios: the row's bulk ESS/s over the first row's (below 1: the first row is ahead by 1/ratio)")


if __name__ == "__main__":
    main()
