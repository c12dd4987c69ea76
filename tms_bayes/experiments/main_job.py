"""The main job (``tms-bayes run``): does the posterior of TMS at c = 6 move from the 5-gon to the 6-gon
as n grows, where the free-energy theory says?

Two estimators of the posterior mass per phase, on the same datasets: the NUTS chain shares of a
posterior sweep (:mod:`.posterior_sweep`, then :mod:`.occupancy`) and data-tempered SMC across n
(:mod:`.smc`), set against the finite-n theory.  On a CPU with ≥ 2 cores SMC runs in a second process
beside NUTS (each keeps one core); its finished seeds are on disk, so the analysis step only reads them.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .._options import setting
from ..inference.smc import SMCSettings
from ..inference.sweep import SweepSettings
from . import Command
from .occupancy import OccupancyOptions, report_sweep
from .posterior_sweep import default_out
from .smc import REPEATS_DOC, SmcJob

__all__ = ["MainJob", "main", "COMMAND"]

ESTIMATORS = ("chains", "smc", "both")


@dataclass(frozen=True)
class MainJob:
    """Everything ``tms-bayes run`` does, with its built-in defaults."""

    sweep: SweepSettings = setting(default_factory=SweepSettings)
    occupancy: OccupancyOptions = setting(default_factory=OccupancyOptions)
    estimator: str = setting(
        "both",
        "chains: NUTS chain shares; smc: posterior mass by data-tempered SMC; both: both, "
        "against the finite-n theory",
        choices=ESTIMATORS,
    )
    parallel: bool = setting(
        True, "with both estimators: run SMC after NUTS, not beside it on a second core", flag="--no-parallel"
    )
    smc: SMCSettings = setting(default_factory=SMCSettings)
    repeats: int = setting(3, REPEATS_DOC, flag="--smc-repeats")

    def __post_init__(self):
        if self.sweep.model != "tms":
            raise ValueError(
                f"tms-bayes run analyses TMS sweeps (k-gon phases); for {self.sweep.model} "
                "use tms-bayes sweep"
            )
        self.smc_job()  # validates the SMC part before any work

    def smc_job(self) -> SmcJob:
        return SmcJob(sweep=self.sweep, smc=self.smc, repeats=self.repeats, occupancy=self.occupancy)


def main(job: MainJob, out=None, *, progress: bool = True) -> int:
    """Run the main job into ``out`` (default ``runs/tms-c<c>``; SMC in ``<out>/smc``) and print every
    result and the wall-time split."""
    from . import posterior_sweep, smc

    out = out or default_out(job.sweep)
    smc_out = f"{out}/smc"
    split, start = {}, time.perf_counter()
    background = _start_smc_beside_nuts(job, smc_out) if job.estimator == "both" and job.parallel else None
    try:
        if job.estimator in ("chains", "both"):
            t0 = time.perf_counter()
            # beside the SMC process the NUTS sweep keeps one core; alone, it samples a job per core at once
            posterior_sweep.main(
                posterior_sweep.SweepJob(sweep=job.sweep),
                out,
                progress=progress,
                devices=1 if background is not None else None,
            )
            split["NUTS sweep"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            report_sweep(out, None, job.occupancy, progress=progress)
            split["chain-share analysis"] = time.perf_counter() - t0
        if background is not None:
            t0 = time.perf_counter()
            split["SMC (second process, beside NUTS)"] = _finish_background(background)
            split["waiting for SMC"] = time.perf_counter() - t0
    finally:  # an error or Ctrl-C here: stop the SMC process too (its finished seeds are on disk)
        _stop_background(background)
    if job.estimator in ("smc", "both"):
        chains = smc.chains_occupancy(out, job.sweep.n) if job.estimator == "both" else None
        smc.main(job.smc_job(), smc_out, progress=progress, chains=chains, split=split)
    print(
        "wall time: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in split.items())
        + f"; total {time.perf_counter() - start:.0f} s"
    )
    return 0


def _smc_job(job: MainJob, out, results) -> None:
    """The SMC sweep in its own process (spawned: JAX does not survive a fork); puts ("ok", seconds) or
    ("error", type name, message) on ``results``."""
    from .._devices import compilation_cache
    from ..analysis.smc_report import per_dataset_theory
    from .smc import run

    t0 = time.perf_counter()
    try:
        compilation_cache()  # the parent's choice (TMS_BAYES_JAX_CACHE) for this new process too
        sweep = run(
            job.sweep,
            job.smc,
            out,
            repeats=job.repeats,
            progress=False,
            log=lambda msg: print(f"[smc] {msg}", flush=True),
        )
        per_dataset_theory(sweep)  # the per-dataset Laplace theory, cached for the report
        print(f"[smc] per-dataset theory for {len(sweep.completed)} datasets done", flush=True)
        results.put(("ok", time.perf_counter() - t0))
    except Exception as exc:  # reported by the parent, which decides what to do
        results.put(("error", type(exc).__name__, str(exc)))


def _start_smc_beside_nuts(job: MainJob, out):
    """On a CPU with ≥ 2 cores, start the SMC sweep in a second process while NUTS runs (each uses one
    core); None where that would not help (one core, or an accelerator that both would share)."""
    import multiprocessing
    import os

    from .._jax import jax

    if (os.cpu_count() or 1) < 2 or jax.default_backend() != "cpu":
        return None
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_smc_job, args=(job, out, results), daemon=True)
    proc.start()
    print(f"SMC runs in a second process beside the NUTS sweep (results in {out})", flush=True)
    return proc, results


def _finish_background(background) -> float:
    """Wait for the background SMC sweep and return its seconds; NaN where the process died without a
    word (the analysis step then runs the unfinished seeds itself, resuming from what is on disk).  A
    ``ValueError`` in the child is raised here (one line from the CLI)."""
    import queue

    proc, results = background
    while True:
        try:
            msg = results.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                print("tms-bayes: the SMC process stopped early; finishing its seeds here", file=sys.stderr)
                return float("nan")
    proc.join()
    if msg[0] == "ok":
        return msg[1]
    if msg[1] in ("ValueError", "OSError", "PermissionError", "FileNotFoundError", "FileExistsError"):
        raise ValueError(f"the SMC process stopped: {msg[2]}")  # an expected failure: one line, exit 2
    raise RuntimeError(f"the SMC process failed: {msg[1]}: {msg[2]}")


def _stop_background(background) -> None:
    if background is None:
        return
    proc, results = background
    if proc.is_alive():
        proc.terminate()
        proc.join()
    results.close()
    results.join_thread()


COMMAND = Command(
    "run",
    "the main job: sweep + occupancy + report for TMS at c = 6 with built-in defaults",
    MainJob,
    main,
    lambda job: default_out(job.sweep),
    writes=("sweep",),
)
