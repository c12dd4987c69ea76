"""The ``tms-bayes theory`` job: the catalogue, the energy levels, the Laplace terms and the theoretical
occupancy curves for a chosen set of phases in both free-energy conventions (paper; Laplace with every
O(1) term), with every pairwise crossover, written to a directory (atomically) and returned."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..store.atomic import write_figure, write_netcdf, write_text
from ..theory import (
    critical_points,
    crossover_steps,
    crossovers,
    laplace_terms,
    theoretical_occupancy,
    winner_changes,
)
from . import plots

__all__ = ["TheoryReport", "theory_report", "DEFAULT_PHASES", "DEFAULT_N"]

DEFAULT_PHASES = ("5", "5+", "6")
DEFAULT_N = np.arange(100, 2001, 50)

TABLE_COLUMNS = [
    "k",
    "sigma",
    "phi",
    "loss",
    "lambda_",
    "lambda_source",
    "c_alpha",
    "hessian_rank",
    "hessian_negative",
    "grad_norm",
]


@dataclass(frozen=True)
class TheoryReport:
    catalogue: xr.Dataset
    occupancy: xr.DataArray
    crossovers: list[dict]
    files: dict[str, Path]
    pairwise: pd.DataFrame  # every pair of phases × convention: each root n, trusted, winner after
    laplace: xr.Dataset | None  # Laplace terms per phase (None when a phase is not minimally singular)
    occupancy_laplace: xr.DataArray | None
    steps: pd.DataFrame | None  # how each O(1) term moves the first pair's crossover (Laplace phases only)

    def laplace_table(self) -> str:
        """The Laplace terms per phase as fixed-width text."""
        if self.laplace is None:
            return "Laplace terms: not available (a chosen phase is not a minimally singular local minimum)"
        lines = [
            f"{'phase':<7}{'rank':>5}{'½log det′H':>12}{'log orbit':>11}{'copies':>8}"
            f"{'−log φ_live':>13}{'P_flat':>10}{'± (log)':>9}{'C_α':>10}"
        ]
        for p in self.laplace.phase.values:
            t = self.laplace.sel(phase=p)
            lines.append(
                f"{p:<7}{int(t.hessian_rank):>5}{float(t.half_log_det):>12.4f}{float(t.log_orbit):>11.4f}"
                f"{int(t.copies):>8}"
                f"{float(t.neg_log_prior):>13.4f}{float(t.flat_mass):>10.5f}{float(t.flat_log_se):>9.4f}"
                f"{float(t.constant):>10.4f}"
            )
        lines.append(
            "F = n_eff L + (rank/2) log n_eff + C_α,  "
            "C_α = −(rank/2) log 2π + ½ log det′H − log(copies · orbit · φ_live · P_flat)"
        )
        return "\n".join(lines)

    def steps_table(self) -> str:
        if self.steps is None:
            return ""
        pair = self.steps.pair.iloc[0]
        body = self.steps.drop(columns=["pair"]).to_string(index=False, float_format=lambda v: f"{v:.3f}")
        return (
            f"How each O(1) term moves the {pair} crossover "
            f"(paper convention first, then each Laplace term added):\n{body}"
        )

    def pairwise_table(self) -> str:
        if self.pairwise.empty:
            return "no pairwise crossovers"
        return self.pairwise.to_string(index=False, float_format=lambda v: f"{v:.1f}")

    def table(self) -> str:
        """The catalogue as a fixed-width text table (λ unknown printed as 'unknown')."""
        df = self.catalogue[TABLE_COLUMNS].to_dataframe()
        lines = [
            f"{'phase':<8}{'k':>3}{'σ':>3}{'φ':>3}{'L(w*)':>11}{'λ':>9}{'c_α':>10}"
            f"{'rank':>6}{'neg':>5}{'|∇L|':>10}"
        ]
        for name, row in df.iterrows():
            lam = "unknown" if row.lambda_source == "unknown" else f"{row.lambda_:g}"
            lines.append(
                f"{name:<8}{row.k:>3}{row.sigma:>3}{row.phi:>3}{row.loss:>11.5f}{lam:>9}{row.c_alpha:>10.5f}"
                f"{row.hessian_rank:>6}{row.hessian_negative:>5}{row.grad_norm:>10.1e}"
            )
        return "\n".join(lines)


def pairwise_crossovers(
    cat: xr.Dataset, phases, *, lambdas=None, conventions=("paper", "laplace"), **scale
) -> pd.DataFrame:
    """Every root of F_α = F_β for every pair of ``phases`` in each convention (rows: phase_a, phase_b,
    convention, n, trusted, winner_after; a pair that never crosses gets one row with n = NaN).  A
    convention that does not apply to a phase (Laplace at a non-minimally-singular point) is skipped."""
    rows = []
    for conv in conventions:
        for a, b in itertools.combinations(phases, 2):
            try:
                roots = crossovers(cat, a, b, lambdas=lambdas, convention=conv, **scale)
            except ValueError:
                if conv == "paper":
                    raise
                continue
            for x in roots or [{"n": math.nan, "trusted": False, "winner_after": ""}]:
                rows.append({"phase_a": a, "phase_b": b, "convention": conv, **x})
    return pd.DataFrame(rows, columns=["phase_a", "phase_b", "convention", "n", "trusted", "winner_after"])


def theory_report(
    c: int = 6,
    r: int = 2,
    phases=DEFAULT_PHASES,
    n=DEFAULT_N,
    out: str | Path | None = None,
    *,
    lambdas=None,
    sigma: float = math.sqrt(0.5),
    beta: float = 1.0,
    prior_std: float = 1.0,
) -> TheoryReport:
    """Build the catalogue at (r, c) and the theoretical occupancy of ``phases`` over ``n`` in both
    conventions, the Laplace terms and every pairwise crossover; when ``out`` is given, write
    catalogue.csv/.nc, laplace.csv, crossovers.csv, occupancy.nc (paper), occupancy_laplace.nc,
    energy_levels.png, occupancy.png (paper) and occupancy_conventions.png."""
    cat = critical_points(c, r)
    if isinstance(phases, str):
        phases = [p.strip() for p in phases.split(",") if p.strip()]
    phases = list(phases)
    scale = {"sigma": sigma, "beta": beta}
    occ = theoretical_occupancy(cat, phases, n, lambdas=lambdas, **scale)
    cross = winner_changes(occ, cat, lambdas=lambdas)
    occ.attrs.update(
        {
            "tms_bayes_version": __version__,
            "crossovers": "; ".join(f"{x['from']}->{x['to']}: n_crit={x['n_crit']:.3f}" for x in cross)
            or "none in range",
        }
    )
    try:
        terms = laplace_terms(cat, phases, prior_std=prior_std)
        occ_lap = theoretical_occupancy(cat, phases, n, convention="laplace", prior_std=prior_std, **scale)
        occ_lap.attrs["tms_bayes_version"] = __version__
    except ValueError:
        terms, occ_lap = None, None
    pairwise = pairwise_crossovers(cat, phases, lambdas=lambdas, **scale)
    steps = None
    if terms is not None and len(phases) >= 2 and prior_std == 1.0:
        a, b = ("5", "6") if {"5", "6"} <= set(phases) else (phases[0], phases[-1])
        steps = crossover_steps(cat, a, b, **scale).assign(pair=f"{a} -> {b}")
    files: dict[str, Path] = {}
    if out is not None:
        out = Path(out)
        cat_out = cat.assign_attrs(tms_bayes_version=__version__)
        files["catalogue.csv"] = write_text(out / "catalogue.csv", cat[TABLE_COLUMNS].to_dataframe().to_csv())
        files["catalogue.nc"] = write_netcdf(out / "catalogue.nc", cat_out)
        files["crossovers.csv"] = write_text(out / "crossovers.csv", pairwise.to_csv(index=False))
        files["occupancy.nc"] = write_netcdf(out / "occupancy.nc", occ.to_dataset(name="occupancy"))
        files["energy_levels.png"] = write_figure(out / "energy_levels.png", plots.energy_levels(cat))
        files["occupancy.png"] = write_figure(out / "occupancy.png", plots.occupancy_curves(occ, cross))
        if terms is not None:
            files["laplace.csv"] = write_text(out / "laplace.csv", terms.to_dataframe().to_csv())
            files["occupancy_laplace.nc"] = write_netcdf(
                out / "occupancy_laplace.nc", occ_lap.to_dataset(name="occupancy")
            )
            if steps is not None:
                files["crossover_steps.csv"] = write_text(
                    out / "crossover_steps.csv", steps.to_csv(index=False)
                )
            files["occupancy_conventions.png"] = write_figure(
                out / "occupancy_conventions.png",
                plots.occupancy_conventions({"laplace": occ_lap, "paper": occ}),
            )
    return TheoryReport(cat, occ, cross, files, pairwise, terms, occ_lap, steps)
