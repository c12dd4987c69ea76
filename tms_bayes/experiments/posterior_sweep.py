"""The posterior sweep over n as an experiment: run the sweep (:mod:`tms_bayes.inference.sweep`), then
rebuild its derived table ``diagnostics.csv`` from every run file (:mod:`tms_bayes.analysis.diagnostics`:
R̂, ESS and MCSE on the symmetry-invariant quantities, sampler health).  The table is derived, so it is
rewritten in full after each run (also after a resumed or already finished one) and can never miss a job."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analysis.diagnostics import sweep_diagnostics
from ..inference.sweep import Sweep, SweepSettings, run_sweep
from ..store.atomic import write_text

__all__ = ["run", "write_diagnostics"]


def write_diagnostics(sweep: Sweep) -> pd.DataFrame:
    """Rebuild ``diagnostics.csv`` of ``sweep`` from its run files; returns the table."""
    table = sweep_diagnostics(sweep)
    write_text(Path(sweep.out) / "diagnostics.csv", table.to_csv(index=False))
    return table


def run(settings: SweepSettings, out, *, progress: bool = True, log=print, devices: int | None = None) -> Sweep:
    """Run (or resume) the sweep into ``out`` and rebuild ``diagnostics.csv``; returns the :class:`Sweep`."""
    sweep = run_sweep(settings, out, progress=progress, log=log, devices=devices)
    write_diagnostics(sweep)
    return sweep
