"""The chain-share occupancy report of a posterior sweep directory (TMS: k-gon phases against the
free-energy theory; ReLU sweeps over n: the PT1/PT2 phases).  Opening the directory happens here; the
analysis itself is :func:`tms_bayes.analysis.report.write_occupancy_report` and
:func:`tms_bayes.experiments.relu.relu_sweep_report`."""

from __future__ import annotations

from ..analysis.report import OccupancyReport, write_occupancy_report
from ..inference.sweep import load_sweep

__all__ = ["occupancy_report"]


def occupancy_report(run_dir, out=None, **options) -> OccupancyReport:
    """Analyse the TMS sweep in ``run_dir`` and write the report into ``out`` (default: ``run_dir``);
    ``options`` as :func:`~tms_bayes.analysis.report.write_occupancy_report` (theory_phases, thresholds,
    max_tsne_samples, n_boot, seed, progress, ...)."""
    return write_occupancy_report(load_sweep(run_dir), out, **options)
