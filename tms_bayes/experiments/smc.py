"""Posterior mass per phase by data-tempered SMC across n (the main job's reference estimator).

:func:`run` — SMC across the sweep's grid, one run per dataset seed plus independent repeats on seed 0
(:mod:`tms_bayes.inference.smc_sweep`); :func:`analyse` — label the particles, find each phase's
local minimum of L_n on every D_n, and write the report with the per-dataset theory, the agreement
table and the crossovers (:mod:`tms_bayes.analysis.smc_report`), beside the NUTS chain shares of a
``tms-bayes run`` directory when given; :func:`pymc_reference` — log Z at one n by ``pm.sample_smc``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from .. import _validate
from .._options import setting
from ..inference.executor import ExecutorOptions
from ..inference.smc import SMCSettings
from ..inference.sweep import SweepSettings
from ..store.netcdf import open_dataset
from . import Command
from .occupancy import OccupancyOptions

__all__ = ["SmcJob", "run", "analyse", "chains_occupancy", "pymc_reference", "main", "COMMAND"]

#: repeats: independent SMC runs on dataset 0 (their spread is the sampler's alone)
REPEATS_DOC = "independent SMC runs on dataset 0: R > 1 adds R − 1 runs whose spread is the sampler's alone"


@dataclass(frozen=True)
class SmcJob:
    """``tms-bayes smc``: SMC across the sweep's grid, analysed against the theory (and the NUTS chain
    shares of ``chains_run`` when given)."""

    sweep: SweepSettings = setting(default_factory=SweepSettings)
    smc: SMCSettings = setting(default_factory=SMCSettings)
    repeats: int = setting(3, REPEATS_DOC, flag="--smc-repeats")
    occupancy: OccupancyOptions = setting(default_factory=OccupancyOptions)
    chains_run: str | None = setting(
        None,
        "a NUTS sweep directory on the same grid (with occupancy.nc) to compare chain shares",
        parse=str,
        show="none",
    )
    reference_n: int | None = setting(
        None, "also run pm.sample_smc at this n (seed 0) and compare log Z", parse=int, show="none"
    )
    run_on: ExecutorOptions = setting(default_factory=ExecutorOptions)

    def __post_init__(self):
        if self.sweep.model != "tms":
            raise ValueError("SMC posterior mass per phase analyses TMS k-gon phases; the model must be tms")
        _validate.integer("smc_repeats", self.repeats, minimum=1, maximum=100)
        if self.reference_n is not None and self.reference_n not in self.sweep.n:
            raise ValueError(
                f"reference_n must be one of the sweep's n {list(self.sweep.n)}, got {self.reference_n}"
            )
        if self.chains_run is not None:
            chains_occupancy(self.chains_run, self.sweep.n)


def run(
    sweep_settings,
    smc_settings,
    out,
    *,
    repeats: int = 3,
    progress: bool = True,
    log=print,
    executor: ExecutorOptions | None = None,
):
    """Run (or resume) SMC across n into ``out``; returns the
    :class:`~tms_bayes.inference.smc_sweep.SMCSweep`.  ``executor``: where the SMC runs (one per dataset
    seed and repeat) go (default this process; :mod:`tms_bayes.inference.executor`)."""
    from ..inference.executor import run_jobs
    from ..inference.smc_sweep import SMCSweep

    if sweep_settings.model != "tms":
        raise ValueError("SMC posterior mass per phase analyses TMS k-gon phases; the model must be tms")
    smc = run_jobs(
        SMCSweep(sweep_settings, smc_settings, out, repeats=repeats), executor, progress=progress, log=log
    )
    smc.write_evidence()  # derived from the run files (the local run wrote it too; a cluster's did not)
    return smc


def chains_occupancy(run_dir, grid) -> xr.Dataset:
    """The NUTS chain shares (``occupancy.nc``) of a ``tms-bayes run``/``occupancy`` directory, checked to
    cover the grid ``grid``."""
    path = Path(run_dir) / "occupancy.nc"
    if not path.exists():
        raise ValueError(f"{run_dir} has no occupancy.nc; run tms-bayes run (or occupancy) there first")
    with open_dataset(path) as ds:
        chains = ds.load()
    if list(chains.n.values) != list(grid):
        raise ValueError(f"{run_dir} covers n = {list(chains.n.values)}, not this grid {list(grid)}")
    return chains


def analyse(
    smc,
    *,
    rule=None,
    phases=("5", "5+", "6"),
    chains: xr.Dataset | None = None,
    out=None,
    progress: bool = True,
):
    """Labels, phase minima and the SMC report of ``smc`` (written to ``out``, default ``<smc>/report``);
    returns the :class:`~tms_bayes.analysis.smc_report.SMCReport`."""
    from ..analysis.free_energy import smc_labels
    from ..analysis.smc_report import smc_report
    from ..inference.smc_sweep import phase_minima

    labels = smc_labels(smc, rule)
    loss_min = phase_minima(smc, labels, list(phases), progress=progress)
    return smc_report(
        smc,
        out or f"{smc.out}/report",
        loss_min=loss_min,
        chains=chains,
        phases=list(phases),
        thresholds=rule,
    )


def pymc_reference(smc, n: int) -> dict:
    """log Z at ``n`` on dataset seed 0 by ``pm.sample_smc`` beside ours:
    {"ours", "pymc", "pymc_chains", "wall_time_s"}."""
    from ..inference.smc_sweep import pymc_smc_reference

    ref = pymc_smc_reference(smc.sweep_settings, 0, n, draws=smc.settings.particles)
    ours = smc.evidence().query("seed == 0 and n == @n")
    return {
        "ours": float(ours.log_evidence.iloc[0]) if len(ours) else math.nan,
        "pymc": ref["mean"],
        "pymc_chains": list(ref["log_evidence"]),
        "wall_time_s": ref["wall_time_s"],
    }


def main(
    job: SmcJob,
    out=None,
    *,
    progress: bool = True,
    chains: xr.Dataset | None = None,
    split: dict | None = None,
) -> int:
    """Run (or resume) SMC into ``out`` (default ``runs/smc-c<c>``), analyse, report and print the
    occupancy table, the crossovers and λ from F_n's growth (the CLI's ``smc``).  ``chains``: NUTS chain
    shares to set beside (else those of ``job.chains_run``); ``split``: a dict that receives wall times."""
    out = out or f"runs/smc-c{job.sweep.c}"
    phases = list(job.occupancy.theory_phases)
    if chains is None and job.chains_run:
        chains = chains_occupancy(job.chains_run, job.sweep.n)
    split = {} if split is None else split
    t0 = time.perf_counter()
    smc = run(job.sweep, job.smc, out, repeats=job.repeats, progress=progress, executor=job.run_on)
    if not any(k.startswith("SMC (") for k in split):
        split["SMC"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = analyse(smc, rule=job.occupancy.classifier.rule(), phases=phases, chains=chains, progress=progress)
    print(rep.occupancy_table(phases).to_string(index=False))
    for c in rep.crossovers:
        print(f"crossover 5 -> 6 ({c['kind']}): n = {c['n_crit']:.1f}  [{c['lower']:.1f}, {c['upper']:.1f}]")
    if rep.growth is not None:
        for p in rep.growth.phase.values:
            g = rep.growth.sel(phase=p)
            print(
                f"λ from free energy, phase {p}: {float(g['lambda']):.2f} ± {float(g.se):.2f} "
                f"(theory {float(g.lambda_theory):g})"
            )
    if job.reference_n:
        ref = pymc_reference(smc, job.reference_n)
        print(
            f"log Z at n = {job.reference_n}, seed 0: tms-bayes SMC {ref['ours']:.2f}; "
            f"pm.sample_smc {ref['pymc']:.2f} "
            f"(chains {', '.join(f'{v:.2f}' for v in ref['pymc_chains'])}; {ref['wall_time_s']:.0f} s)"
        )
    print(f"report: {out}/report/report.md")
    split["SMC analysis (phase minima, per-dataset theory, report)"] = time.perf_counter() - t0
    return 0


COMMAND = Command(
    "smc",
    "data-tempered SMC across n: posterior mass per phase, free energies, λ from F_n's growth",
    SmcJob,
    main,
    lambda job: f"runs/smc-c{job.sweep.c}",
    writes=("smc",),
)
