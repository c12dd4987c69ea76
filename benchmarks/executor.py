"""A sweep through the local executor vs a Dask ``LocalCluster``, in one process, plus a simulated
scaling table for larger clusters.

1. ``local``: today's in-process executor (chains sharded over every core);
2. ``dask``: a ``LocalCluster`` of ``--workers`` worker processes, one job at a time each, every worker
   with cores ÷ workers JAX devices; each worker compiles the sweep's programs once.

Printed: wall time of each (cluster start-up included for dask, reported apart), the ratio, and each
worker's compile time.  Then a table for 8–64 workers, simulated from the measured time of one job on
one worker and the per-worker compile time: wall ≈ compile + ⌈jobs / workers⌉ · job time (no
scheduler or disk overhead, which a real cluster adds), against the local executor's serial time, with
the compile share that every worker pays again.

Needs the dask extra:  pip install 'tms-bayes[dask]'

Usage:  python benchmarks/executor.py [--workers 2] [--n 100:1200:100] [--seeds 4] [--chains 4]
        [--tune 300] [--draws 300]          (defaults: the default sweep of ``tms-bayes sweep``)
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--n", default="100:1200:100")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--tune", type=int, default=300)
    p.add_argument("--draws", type=int, default=300)
    a = p.parse_args()

    from distributed import Client, LocalCluster

    from tms_bayes._parse import parse_sizes
    from tms_bayes.inference.executor import run_on_dask
    from tms_bayes.inference.sweep import Sweep, SweepSettings

    st = SweepSettings(n=tuple(parse_sizes(a.n)), seeds=a.seeds, chains=a.chains, tune=a.tune, draws=a.draws)
    jobs = len(st.n) * st.seeds
    quiet = dict(progress=False, log=lambda *_: None)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        local = Sweep(st, f"{tmp}/local").run(**quiet)
        t_local = time.perf_counter() - t0
        t0 = time.perf_counter()
        with (
            LocalCluster(
                n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as c,
            Client(c) as client,
        ):
            client.wait_for_workers(a.workers)
            t_start = time.perf_counter() - t0
            t1 = time.perf_counter()
            dask = run_on_dask(Sweep(st, f"{tmp}/dask"), client, **quiet)
            t_dask = time.perf_counter() - t1
    compile_local = local.timings.get("compile_s", 0.0)
    job_s = (t_local - compile_local) / jobs
    per_worker_compile = dask.timings["compile_s"] / max(dask.timings["workers"], 1)
    job_worker = (t_dask - per_worker_compile) / math.ceil(jobs / a.workers)  # one job on one worker
    print(
        f"sweep: {jobs} jobs (n = {list(st.n)}, {st.seeds} seeds, {st.chains} chains, {st.tune}+{st.draws})"
    )
    print(f"local executor       {t_local:8.1f} s   (compile {compile_local:.1f} s, {job_s:.2f} s per job)")
    print(
        f"dask, {a.workers} workers     {t_dask:8.1f} s   (+ {t_start:.1f} s cluster start; compile "
        f"{per_worker_compile:.1f} s per worker, {dask.timings['workers']} workers used)"
    )
    print(
        f"ratio local / dask   {t_local / t_dask:8.2f}   (with start-up {t_local / (t_dask + t_start):.2f})"
    )
    print("\nsimulated (measured job and compile times; no scheduler or disk overhead):")
    print(f"{'workers':>8} {'jobs/worker':>12} {'wall s':>9} {'speed-up':>9} {'compile share':>14}")
    for big_jobs in (jobs, 10 * jobs):
        print(f"  {big_jobs} jobs:")
        for w in (8, 16, 32, 64):
            per = math.ceil(big_jobs / w)
            wall = per_worker_compile + per * job_worker  # each worker as fast as one measured here
            serial = compile_local + big_jobs * job_s
            print(f"{w:>8} {per:>12} {wall:>9.1f} {serial / wall:>9.1f} {per_worker_compile / wall:>14.0%}")


if __name__ == "__main__":
    main()
