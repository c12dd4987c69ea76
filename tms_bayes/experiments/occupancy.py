"""The chain-share occupancy report of a posterior sweep directory (TMS: k-gon phases against the
free-energy theory; ReLU sweeps over n: the PT1/PT2 phases).  Opening the directory happens here; the
analysis itself is :func:`tms_bayes.analysis.report.write_occupancy_report` and
:func:`tms_bayes.experiments.relu.relu_sweep_report`."""

from __future__ import annotations

from dataclasses import dataclass

from .. import _validate
from .._options import setting
from .._parse import parse_names
from ..analysis.phases import ClassifierOptions
from ..analysis.report import OccupancyReport, write_occupancy_report
from ..inference.sweep import load_sweep
from . import Command

__all__ = ["OccupancyOptions", "OccupancySettings", "occupancy_report", "main", "COMMAND"]


@dataclass(frozen=True)
class OccupancyOptions:
    """How draws become phases and which theoretical curves they are set against."""

    theory_phases: tuple[str, ...] = setting(
        ("5", "5+", "6"), "phases for the theoretical curves", parse=parse_names
    )
    tsne_samples: int = setting(3000, "draws embedded by t-SNE")
    classifier: ClassifierOptions = setting(default_factory=ClassifierOptions)

    def __post_init__(self):
        if not self.theory_phases:
            raise ValueError("theory_phases must name at least one phase (e.g. 5,5+,6)")
        _validate.integer("tsne_samples", self.tsne_samples, minimum=10)
        _validate.ceiling("tsne_samples", self.tsne_samples, 100_000)


@dataclass(frozen=True)
class OccupancySettings:
    """``tms-bayes occupancy``: re-analyse the sweep in ``run_dir``."""

    run_dir: str = setting("", "a sweep directory (with manifest.json)", positional=True)
    options: OccupancyOptions = setting(default_factory=OccupancyOptions)

    def __post_init__(self):
        if self.run_dir:
            load_sweep(self.run_dir)  # a ValueError unless it is a readable sweep


def occupancy_report(run_dir, out=None, **options) -> OccupancyReport:
    """Analyse the TMS sweep in ``run_dir`` and write the report into ``out`` (default: ``run_dir``);
    ``options`` as :func:`~tms_bayes.analysis.report.write_occupancy_report` (theory_phases, thresholds,
    max_tsne_samples, n_boot, seed, progress, ...)."""
    return write_occupancy_report(load_sweep(run_dir), out, **options)


def report_sweep(run_dir, out, options: OccupancyOptions, *, progress: bool = True) -> None:
    """Write and print the occupancy report of the sweep in ``run_dir`` (TMS or ReLU) into ``out``."""
    if load_sweep(run_dir).settings.model.startswith("relu"):
        from .relu import relu_sweep_report

        rep = relu_sweep_report(run_dir, out, progress=progress)
        print(rep["occupancy"].share.to_pandas().round(3).to_string())
        files = rep["files"]
    else:
        report = occupancy_report(
            run_dir,
            out,
            theory_phases=list(options.theory_phases),
            thresholds=options.classifier.rule(),
            max_tsne_samples=options.tsne_samples,
            progress=progress,
        )
        print()
        print(report.text())
        files = report.files
    for path in files.values():
        print(f"wrote {path}")


def main(settings: OccupancySettings, out=None, *, progress: bool = True) -> int:
    """The CLI's ``occupancy``: the report of ``settings.run_dir`` into ``out`` (default: the sweep)."""
    report_sweep(settings.run_dir, out, settings.options, progress=progress)
    return 0


COMMAND = Command(
    "occupancy",
    "re-analyse an existing TMS sweep: phases, occupancy, t-SNE, report",
    OccupancySettings,
    main,
    lambda s: s.run_dir,
    writes=("sweep", None),
)
