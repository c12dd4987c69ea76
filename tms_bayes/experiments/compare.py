"""Runs of the main job side by side: the 5 → 6 crossover by every estimator and F5 − F6 against n
(:func:`tms_bayes.analysis.compare.compare_runs`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._options import setting
from . import Command

__all__ = ["CompareSettings", "labelled_runs", "main", "COMMAND"]


def labelled_runs(items) -> tuple[tuple[str, str], ...]:
    """``LABEL=DIR`` or ``DIR`` items as (label, dir) pairs; split at the last '=' so that labels such as
    "σ² = 1/2=runs/a" keep theirs."""
    pairs = []
    for item in items:
        label, sep, path = str(item).rpartition("=")
        pairs.append((label, path) if sep else (item, item))
    return tuple(pairs)


@dataclass(frozen=True)
class CompareSettings:
    """``tms-bayes compare``: (label, run directory) pairs."""

    runs: tuple[tuple[str, str], ...] = setting(
        (),
        "run directories of tms-bayes run (estimator smc or both), "
        "optionally LABEL=DIR (split at the last '=')",
        positional=True,
        nargs="+",
        parse=labelled_runs,
    )

    def __post_init__(self):
        labels = [label for label, _ in self.runs]
        if len(set(labels)) != len(labels):
            raise ValueError(f"compare needs distinct labels, got {labels}")
        for label, path in self.runs:
            if not Path(path).is_dir():
                raise ValueError(f"{path} (run {label!r}) is not a directory")


def main(settings: CompareSettings, out="results/compare", *, progress: bool = True) -> int:
    """Write the comparison into ``out`` and print its table (the CLI's ``compare``)."""
    from ..analysis.compare import compare_runs

    comp = compare_runs(dict(settings.runs), out)
    print(comp.table().to_string(index=False))
    for path in comp.files.values():
        print(f"wrote {path}")
    return 0


COMMAND = Command(
    "compare",
    "runs of the main job side by side: the 5 -> 6 crossover by every estimator, F5 - F6 against n",
    CompareSettings,
    main,
    "results/compare",
)
