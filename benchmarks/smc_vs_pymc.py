"""log Z by tms-bayes' data-tempered SMC against PyMC's ``pm.sample_smc``, side by side in one process.

Two models, each on fixed data, ``--repeats`` independent runs per method:

- conjugate Bayesian regression (d = 3, n = 200): the exact log Z is known, so the table reports the
  error of the mean and the spread across runs;
- TMS at c = 6 on the default sweep's dataset (seed 0) at n = 100 and n = 600: no exact value; the
  spread across runs and the gap between the methods are what can be measured.

Both use the same number of particles (``--particles``).  Wall time per run includes compilation
for tms-bayes (a fresh program per run) and PyMC's compile for pm.sample_smc.

    python benchmarks/smc_vs_pymc.py [--repeats 4] [--particles 1024]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def ours(model, grid, particles, seed):
    from tms_bayes.inference.compile import compile_model
    from tms_bayes.inference.smc import SMCSettings, mask_path, prior_particles, run_smc

    t0 = time.perf_counter()
    cm = compile_model(model)
    res = run_smc(cm, mask_path(cm.data), grid, prior_particles(model, cm, particles, seed=seed), settings=SMCSettings(particles=particles), seed=seed, progress=False)
    return float(res.log_evidence[-1]), time.perf_counter() - t0


def pymc(model, particles, seed):
    from tms_bayes.inference.smc_sweep import pymc_log_evidence

    r = pymc_log_evidence(model, draws=particles, chains=1, random_seed=seed)
    return float(r["mean"]), r["wall_time_s"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--particles", type=int, default=1024)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    from tms_bayes.inference.sweep import SweepSettings, build_model, dataset
    from tms_bayes.models.known import regression_log_evidence, regression_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -0.5, 0.3]) + rng.normal(size=200)
    cases = [("regression d=3, n=200", lambda padded: regression_model(X, y), 200, regression_log_evidence(X, y))]
    st = SweepSettings()
    data = dataset(st, 0)
    for n in (100, 600):
        cases.append((f"TMS c=6, n={n}", lambda padded, n=n: build_model(st, data, n, padded=padded), n, None))
    rows = []
    for name, build, n, exact in cases:
        for method in ("tms-bayes SMC", "pm.sample_smc"):
            vals, secs = [], []
            for r in range(args.repeats):
                if method == "tms-bayes SMC":
                    v, s = ours(build(False), [n], args.particles, seed=100 + r)
                else:
                    v, s = pymc(build(False), args.particles, seed=100 + r)
                vals.append(v)
                secs.append(s)
            vals = np.array(vals)
            rows.append((name, method, vals.mean(), vals.std(ddof=1), (vals.mean() - exact) if exact is not None else float("nan"), np.mean(secs)))
            print(f"{name:<24}{method:<16} log Z = {vals.mean():11.3f}  SD {vals.std(ddof=1):7.3f}  "
                  f"error {rows[-1][4]:8.3f}  {np.mean(secs):7.1f} s/run", flush=True)
    print("\n| model | method | mean log Z | SD over runs | error vs exact | s per run |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.3f} | {r[5]:.1f} |")
    for name in dict.fromkeys(r[0] for r in rows):
        a, b = [r for r in rows if r[0] == name]
        print(f"{name}: wall-time ratio pm.sample_smc / tms-bayes = {b[5] / a[5]:.2f}; SD ratio = {b[3] / a[3]:.2f}; gap (ours − PyMC) = {a[2] - b[2]:.2f} nats")


if __name__ == "__main__":
    main()
