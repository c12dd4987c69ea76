"""The ``tms-bayes theory`` job: the catalogue, the energy levels and the theoretical occupancy
curves for a chosen set of phases, written to a directory (atomically) and returned."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from ..inference.storage import write_figure, write_netcdf, write_text
from ..theory import critical_points, theoretical_occupancy, winner_changes
from . import plots

__all__ = ["TheoryReport", "theory_report", "DEFAULT_PHASES", "DEFAULT_N"]

DEFAULT_PHASES = ("5", "5+", "6")
DEFAULT_N = np.arange(100, 2001, 50)

TABLE_COLUMNS = ["k", "sigma", "phi", "loss", "lambda_", "lambda_source", "c_alpha", "hessian_rank", "hessian_negative", "grad_norm"]


@dataclass(frozen=True)
class TheoryReport:
    catalogue: xr.Dataset
    occupancy: xr.DataArray
    crossovers: list[dict]
    files: dict[str, Path]

    def table(self) -> str:
        """The catalogue as a fixed-width text table (λ unknown printed as 'unknown')."""
        df = self.catalogue[TABLE_COLUMNS].to_dataframe()
        lines = [f"{'phase':<8}{'k':>3}{'σ':>3}{'φ':>3}{'L(w*)':>11}{'λ':>9}{'c_α':>10}{'rank':>6}{'neg':>5}{'|∇L|':>10}"]
        for name, row in df.iterrows():
            lam = "unknown" if row.lambda_source == "unknown" else f"{row.lambda_:g}"
            lines.append(
                f"{name:<8}{row.k:>3}{row.sigma:>3}{row.phi:>3}{row.loss:>11.5f}{lam:>9}{row.c_alpha:>10.5f}{row.hessian_rank:>6}{row.hessian_negative:>5}{row.grad_norm:>10.1e}"
            )
        return "\n".join(lines)


def theory_report(c: int = 6, r: int = 2, phases=DEFAULT_PHASES, n=DEFAULT_N, out: str | Path | None = None, *, lambdas=None) -> TheoryReport:
    """Build the catalogue at (r, c) and the theoretical occupancy of ``phases`` over ``n``; when
    ``out`` is given, write catalogue.csv/.nc, occupancy.nc, energy_levels.png and occupancy.png."""
    cat = critical_points(c, r)
    occ = theoretical_occupancy(cat, phases, n, lambdas=lambdas)
    cross = winner_changes(occ, cat, lambdas=lambdas)
    occ.attrs.update(
        {
            "tms_bayes_version": __version__,
            "crossovers": "; ".join(f"{x['from']}->{x['to']}: n_crit={x['n_crit']:.3f}" for x in cross) or "none in range",
        }
    )
    files: dict[str, Path] = {}
    if out is not None:
        out = Path(out)
        cat_out = cat.assign_attrs(tms_bayes_version=__version__)
        files["catalogue.csv"] = write_text(out / "catalogue.csv", cat[TABLE_COLUMNS].to_dataframe().to_csv())
        files["catalogue.nc"] = write_netcdf(out / "catalogue.nc", cat_out)
        files["occupancy.nc"] = write_netcdf(out / "occupancy.nc", occ.to_dataset(name="occupancy"))
        files["energy_levels.png"] = write_figure(out / "energy_levels.png", plots.energy_levels(cat))
        files["occupancy.png"] = write_figure(out / "occupancy.png", plots.occupancy_curves(occ, cross))
    return TheoryReport(cat, occ, cross, files)
