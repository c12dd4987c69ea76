"""WAIC and PSIS-LOO (and WBIC where β = 1/log n) of every run of a posterior sweep, from the pointwise
log-likelihood saved with each run (:func:`tms_bayes.analysis.criteria.sweep_criteria`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._options import setting
from ..analysis.criteria import sweep_criteria
from ..inference.sweep import load_sweep
from ..store.atomic import write_text
from . import Command

__all__ = ["CriteriaSettings", "main", "COMMAND"]


@dataclass(frozen=True)
class CriteriaSettings:
    """``tms-bayes criteria``: the sweep in ``run_dir``."""

    run_dir: str = setting("", "a sweep directory (tms-bayes sweep or run)", positional=True)

    def __post_init__(self):
        if self.run_dir:
            load_sweep(self.run_dir)  # a ValueError unless it is a readable sweep


def main(settings: CriteriaSettings, out=None, *, progress: bool = True) -> int:
    """Write ``criteria.csv`` (one row per run) into ``out`` (default: the sweep) and print it."""
    ds = sweep_criteria(load_sweep(settings.run_dir))
    frame = ds.drop_vars([v for v in ds.data_vars if v.startswith("wbic")]).to_dataframe().reset_index()
    path = write_text(
        Path(out or settings.run_dir) / "criteria.csv", frame.to_csv(index=False, float_format="%.6g")
    )
    print(frame.round(3).to_string(index=False))
    if ds.attrs["tempered"]:
        print(
            "note: these runs are tempered (β ≠ 1): WAIC and LOO are those of the tempered posterior, "
            "not Watanabe's criteria"
        )
    print(f"wrote {path}")
    return 0


COMMAND = Command(
    "criteria",
    "WAIC and PSIS-LOO (and WBIC where beta = 1/log n) of every run of a sweep",
    CriteriaSettings,
    main,
    lambda s: s.run_dir,
    writes=("sweep", None),
)
