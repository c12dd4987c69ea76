"""SGD dynamics through critical points as an experiment: vectorised training runs with λ̂ at log-spaced
checkpoints (:func:`tms_bayes.inference.dynamics.run_dynamics`), then plateaus matched to the catalogue,
transitions and the Bayesian antecedent hypothesis check
(:func:`tms_bayes.analysis.dynamics_report.dynamics_report`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._options import setting
from ..analysis.phases import ClassifierOptions
from ..inference.dynamics import DynamicsSettings
from ..inference.executor import ExecutorOptions, run_jobs
from . import Command

__all__ = ["PlateauOptions", "DynamicsJob", "run", "main", "COMMAND"]


@dataclass(frozen=True)
class PlateauOptions:
    """How the analysis finds plateaus in a loss curve and matches them to catalogue critical points."""

    slope_tol: float = setting(0.02, "plateau rule: max |dlog L/dlog t|")
    min_span: float = setting(2.0, "plateau rule: min factor in steps")
    loss_tol: float = setting(0.005, "matching: max |L − L_catalogue|")

    def __post_init__(self):
        for name in ("slope_tol", "loss_tol"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not (math.isfinite(self.min_span) and self.min_span >= 1):
            raise ValueError(f"min_span must be a finite factor >= 1, got {self.min_span!r}")


@dataclass(frozen=True)
class DynamicsJob:
    """``tms-bayes dynamics``: the training runs and how they are analysed."""

    training: DynamicsSettings = setting(default_factory=DynamicsSettings)
    plateaus: PlateauOptions = setting(default_factory=PlateauOptions)
    classifier: ClassifierOptions = setting(default_factory=ClassifierOptions)
    run_on: ExecutorOptions = setting(default_factory=ExecutorOptions)


def run(settings, out, *, progress: bool = True, log=print, executor: ExecutorOptions | None = None):
    """Train (or resume) the runs of ``settings`` into ``out``; returns the combined Dataset
    (``dynamics.nc``).  ``executor``: where the batches of runs go (default this process;
    :mod:`tms_bayes.inference.executor`)."""
    from ..inference.dynamics import DynamicsRun

    return run_jobs(DynamicsRun(settings, out), executor, progress=progress, log=log).combine(log)


def main(job: DynamicsJob, out=None, *, progress: bool = True) -> int:
    """Train (or resume), analyse and report into ``out`` (default ``runs/dynamics-c<c>``); print the
    plateau sequences, the transitions and the BAH summary (the CLI's ``dynamics``)."""
    from ..analysis.dynamics_report import dynamics_report

    out = out or f"runs/dynamics-c{job.training.c}"
    ds = run(job.training, out, progress=progress, executor=job.run_on)
    p = job.plateaus
    rep = dynamics_report(
        ds,
        out,
        thresholds=job.classifier.rule(),
        slope_tol=p.slope_tol,
        min_span=p.min_span,
        loss_tol=p.loss_tol,
    )
    print(rep.sequences.final.value_counts().to_string() if len(rep.sequences) else "no plateaus found")
    print(rep.transitions.to_string(index=False) if len(rep.transitions) else "no transitions observed")
    s = rep.summary
    print(
        f"BAH: {s['transitions']} transitions, {s['pass']} pass, {s['fail']} fail, "
        f"{s['inconclusive']} inconclusive; "
        f"ΔL/Δλ increased in {s['ratio_increases']}/{s['consecutive_pairs']} consecutive pairs"
    )
    print(f"report: {rep.files['report']}")
    return 0


COMMAND = Command(
    "dynamics",
    "SGD training runs through critical points: plateaus, transitions, λ̂ along trajectories, BAH check",
    DynamicsJob,
    main,
    lambda job: f"runs/dynamics-c{job.training.c}",
    writes=("dynamics",),
)
