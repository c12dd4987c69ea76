"""The exact TMS theory as an experiment: the critical-point catalogue at (r, c), energy levels, the
theoretical occupancy of chosen phases over n in both conventions (paper, Laplace) and every pairwise
crossover (:func:`tms_bayes.analysis.theory_report.theory_report`).  No sampling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .. import _validate
from .._options import setting
from .._parse import parse_grid, parse_lambdas, parse_names
from . import Command

__all__ = ["TheorySettings", "main", "MAX_C", "COMMAND"]

#: the largest c accepted without --force (the catalogue grows like c²; c = 200 takes seconds)
MAX_C = 200


def _grid(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in parse_grid(text))


@dataclass(frozen=True)
class TheorySettings:
    """What ``tms-bayes theory`` computes; validated on construction."""

    c: int = setting(6, "number of features c")
    r: int = setting(2, "hidden dimension r")
    phases: tuple[str, ...] = setting(
        ("5", "5+", "6"), "comma list of phases for the occupancy curves", parse=parse_names
    )
    n: tuple[float, ...] = setting(
        tuple(range(100, 2001, 50)),
        "sample sizes, start:stop:step inclusive or a comma list",
        parse=_grid,
        show="100:2000:50",
    )
    lambdas: tuple[tuple[str, float], ...] = setting(
        (),
        "λ estimates for phases whose λ theory does not give, e.g. 4+=7.9,4=6.5",
        parse=lambda t: tuple(parse_lambdas(t).items()),
    )
    sigma: float | None = setting(
        None, "likelihood std σ: energy n_eff L with n_eff = nβ/(2σ²)", parse=float, show="√(1/2)"
    )
    beta: float = setting(1.0, "likelihood temperature β")
    prior_std: float = setting(1.0, "prior std of every parameter (the paper's c_α needs 1)")

    def __post_init__(self):
        _validate.integer("c", self.c, minimum=2)
        _validate.ceiling("c", self.c, MAX_C)
        _validate.integer("r", self.r, minimum=1, maximum=self.c)
        if not self.phases:
            raise ValueError("phases must name at least one phase (e.g. 5,5+,6)")
        _validate.sample_sizes("n", self.n)
        if self.sigma is not None:
            _validate.positive("sigma", self.sigma)
        _validate.positive("beta", self.beta)
        _validate.positive("prior_std", self.prior_std)

    @property
    def resolved_sigma(self) -> float:
        return self.sigma if self.sigma is not None else math.sqrt(0.5)


def main(settings: TheorySettings, out="results/theory", *, progress: bool = True) -> int:
    """Compute the theory, write its files into ``out`` and print the tables (the CLI's ``theory``)."""
    from ..analysis.theory_report import theory_report

    report = theory_report(
        c=settings.c,
        r=settings.r,
        phases=list(settings.phases),
        n=list(settings.n),
        out=out,
        lambdas=dict(settings.lambdas),
        sigma=settings.resolved_sigma,
        beta=settings.beta,
        prior_std=settings.prior_std,
    )
    print(report.table(), report.laplace_table(), sep="\n\n", end="\n\n")
    if report.steps is not None:
        print(report.steps_table(), end="\n\n")
    print(
        "Every pairwise crossover (n where F_a = F_b; trusted = inside the range where the expansion holds):"
    )
    print(report.pairwise_table(), end="\n\n")
    for x in report.crossovers:
        print(
            f"change of the most probable phase (paper convention): {x['from']} -> {x['to']} "
            f"at n = {x['n_crit']:.1f}"
        )
    if not report.crossovers:
        print(
            f"no change of the most probable phase (paper convention) for n in "
            f"{settings.n[0]:g}..{settings.n[-1]:g}"
        )
    for path in report.files.values():
        print(f"wrote {Path(path)}")
    return 0


COMMAND = Command(
    "theory",
    "exact TMS theory: critical-point catalogue, energy levels, theoretical occupancy",
    TheorySettings,
    main,
    "results/theory",
)
