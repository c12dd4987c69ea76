"""Posterior mass per phase by data-tempered SMC across n (the main job's reference estimator).

:func:`run` — SMC across the sweep's grid, one run per dataset seed plus independent repeats on seed 0
(:mod:`tms_bayes.inference.smc_sweep`); :func:`analyse` — label the particles, find each phase's
local minimum of L_n on every D_n, and write the report with the per-dataset theory, the agreement
table and the crossovers (:mod:`tms_bayes.analysis.smc_report`), beside the NUTS chain shares of a
``tms-bayes run`` directory when given; :func:`pymc_reference` — log Z at one n by ``pm.sample_smc``.
"""

from __future__ import annotations

import math
from pathlib import Path

import xarray as xr

__all__ = ["run", "analyse", "chains_occupancy", "pymc_reference"]


def run(sweep_settings, smc_settings, out, *, repeats: int = 3, progress: bool = True, log=print):
    """Run (or resume) SMC across n into ``out``; returns the :class:`~tms_bayes.inference.smc_sweep.SMCSweep`."""
    from ..inference.smc_sweep import run_smc_sweep

    if sweep_settings.model != "tms":
        raise ValueError("SMC posterior mass per phase analyses TMS k-gon phases; the model must be tms")
    return run_smc_sweep(sweep_settings, smc_settings, out, repeats=repeats, progress=progress, log=log)


def chains_occupancy(run_dir, grid) -> xr.Dataset:
    """The NUTS chain shares (``occupancy.nc``) of a ``tms-bayes run``/``occupancy`` directory, checked to
    cover the grid ``grid``."""
    path = Path(run_dir) / "occupancy.nc"
    if not path.exists():
        raise ValueError(f"{run_dir} has no occupancy.nc; run tms-bayes run (or occupancy) there first")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        chains = ds.load()
    if list(chains.n.values) != list(grid):
        raise ValueError(f"{run_dir} covers n = {list(chains.n.values)}, not this grid {list(grid)}")
    return chains


def analyse(smc, *, rule=None, phases=("5", "5+", "6"), chains: xr.Dataset | None = None, out=None, progress: bool = True):
    """Labels, phase minima and the SMC report of ``smc`` (written to ``out``, default ``<smc>/report``);
    returns the :class:`~tms_bayes.analysis.smc_report.SMCReport`."""
    from ..analysis.free_energy import smc_labels
    from ..analysis.smc_report import smc_report
    from ..inference.smc_sweep import phase_minima

    labels = smc_labels(smc, rule)
    loss_min = phase_minima(smc, labels, list(phases), progress=progress)
    return smc_report(smc, out or f"{smc.out}/report", loss_min=loss_min, chains=chains, phases=list(phases), thresholds=rule)


def pymc_reference(smc, n: int) -> dict:
    """log Z at ``n`` on dataset seed 0 by ``pm.sample_smc`` beside ours: {"ours", "pymc", "pymc_chains", "wall_time_s"}."""
    from ..inference.smc_sweep import pymc_smc_reference

    ref = pymc_smc_reference(smc.sweep_settings, 0, n, draws=smc.settings.particles)
    ours = smc.evidence().query("seed == 0 and n == @n")
    return {"ours": float(ours.log_evidence.iloc[0]) if len(ours) else math.nan, "pymc": ref["mean"], "pymc_chains": list(ref["log_evidence"]),
            "wall_time_s": ref["wall_time_s"]}
