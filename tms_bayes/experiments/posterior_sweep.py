"""The posterior sweep over n as an experiment: run the sweep (:mod:`tms_bayes.inference.sweep`), then
rebuild its derived table ``diagnostics.csv`` from every run file (:mod:`tms_bayes.analysis.diagnostics`:
R̂, ESS and MCSE on the symmetry-invariant quantities, sampler health).  The table is derived, so it is
rewritten in full after each run (also after a resumed or already finished one) and can never miss a job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analysis.diagnostics import sweep_diagnostics
from .._options import setting
from ..inference.executor import ExecutorOptions, run_jobs
from ..inference.sweep import Sweep, SweepSettings
from ..store.atomic import write_text
from . import Command

__all__ = ["SweepJob", "run", "write_diagnostics", "main", "default_out", "COMMAND"]


@dataclass(frozen=True)
class SweepJob:
    """What ``tms-bayes sweep`` does: the sweep (its settings go into the run directory's manifest) and
    where its jobs run (not recorded: a sweep may be resumed on another executor, with the same files)."""

    sweep: SweepSettings = setting(default_factory=SweepSettings)
    run_on: ExecutorOptions = setting(default_factory=ExecutorOptions)


def write_diagnostics(sweep: Sweep) -> pd.DataFrame:
    """Rebuild ``diagnostics.csv`` of ``sweep`` from its run files; returns the table."""
    table = sweep_diagnostics(sweep)
    write_text(Path(sweep.out) / "diagnostics.csv", table.to_csv(index=False))
    return table


def run(
    settings: SweepSettings,
    out,
    *,
    progress: bool = True,
    log=print,
    devices: int | None = None,
    executor: ExecutorOptions | None = None,
) -> Sweep:
    """Run (or resume) the sweep into ``out`` and rebuild ``diagnostics.csv``; returns the :class:`Sweep`.
    ``executor``: where the jobs run (default this process; :mod:`tms_bayes.inference.executor`)."""
    sweep = run_jobs(Sweep(settings, out), executor, progress=progress, log=log, devices=devices)
    write_diagnostics(sweep)
    return sweep


def default_out(settings: SweepSettings) -> str:
    """``runs/<model>`` (TMS: ``runs/tms-c<c>``)."""
    return f"runs/{settings.model}" + (f"-c{settings.c}" if settings.model == "tms" else "")


def main(job: SweepJob, out=None, *, progress: bool = True, devices: int | None = None) -> int:
    """Run the sweep and print its diagnostics table (the CLI's ``sweep``)."""
    settings = job.sweep
    import time

    from ..analysis.diagnostics import format_table

    t0 = time.perf_counter()
    sweep = run(
        settings, out or default_out(settings), progress=progress, devices=devices, executor=job.run_on
    )
    print(format_table(pd.read_csv(sweep.out / "diagnostics.csv")))
    print(
        f"{len(sweep.completed)} jobs in {sweep.out} ({time.perf_counter() - t0:.1f} s this run; compile "
        f"{sweep.timings.get('compile_s', 0):.1f} s, {sweep.compilations} compiled programs)"
    )
    return 0


COMMAND = Command(
    "sweep",
    "fit posteriors over a range of n (NUTS, compiled once per sweep); resumable",
    SweepJob,
    main,
    lambda job: default_out(job.sweep),
    writes=("sweep",),
)
