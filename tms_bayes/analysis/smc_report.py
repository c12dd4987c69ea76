"""The free-energy report of an SMC run across n: occupancy by posterior mass beside the chain
shares and theory, crossovers from each, F_n(W_α) against theory, and λ from the free energy's growth.

Files (atomic) under ``out/``: ``smc_labels.nc``, ``smc_occupancy.nc``, ``occupancy_estimators.csv``,
``free_energy.csv``, ``lambda_growth.csv``, ``occupancy_estimators.png``, ``free_energy.png``,
``report.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..inference.storage import write_figure, write_netcdf, write_text
from ..theory import critical_points, phase_free_energies, theoretical_occupancy
from ..theory import crossovers as theory_crossovers
from . import plots
from .free_energy import agreement, lambda_from_growth, phase_free_energy, smc_labels, smc_occupancy
from .occupancy import empirical_crossover, theory_crossover_interval
from .phases import Rule
from .report import _has_tabulate

__all__ = ["SMCReport", "smc_report"]


@dataclass
class SMCReport:
    labels: xr.Dataset
    occupancy: xr.Dataset
    F_phase: xr.DataArray
    crossovers: list[dict]
    growth: xr.Dataset | None = None
    chains: xr.Dataset | None = None
    files: dict = field(default_factory=dict)
    agreement: xr.Dataset | None = None  # SMC vs per-dataset Laplace theory as log-odds F5 − F6, per n

    def agreement_table(self) -> pd.DataFrame:
        """Per n: ΔF = F₅ − F₆ by SMC, by the per-dataset Laplace theory and by chains, their paired
        difference with its SE, and the verdict (analysis.free_energy.agreement)."""
        a = self.agreement
        df = pd.DataFrame({"n": a.n.values, "SMC ΔF": a.smc_dF.values, "± SE": a.smc_se.values, "theory ΔF": a.theory_dF.values,
                           "SMC − theory": a.difference.values, "± SE ": a.difference_se.values, "min ESS": a.min_phase_ess.values,
                           "verdict": a.verdict.values})
        if "chains_dF" in a:
            df.insert(4, "chains ΔF", a.chains_dF.values)
        return df.round(2)

    def occupancy_table(self, phases=("5", "5+", "6"), theory: xr.DataArray | None = None) -> pd.DataFrame:
        """One row per n: SMC share [interval], chain share and theory for each phase, all renormalised
        over ``phases`` (the theory's normalisation), and the measured mass outside them ("other")."""
        from .occupancy import on_phases

        phases = list(phases)
        o = on_phases(self.occupancy, phases)
        chains = on_phases(self.chains, phases) if self.chains is not None else None
        rows = {"n": o.n.values}
        for p in phases:
            if p in o.phase.values:
                s, lo, hi = (o[k].sel(phase=p).values for k in ("share", "lower", "upper"))
                rows[f"{p} SMC"] = [f"{a:.3f} [{b:.2f}, {c:.2f}]" for a, b, c in zip(s, lo, hi)]
            if chains is not None:
                rows[f"{p} chains"] = [f"{v:.3f}" for v in chains.share.sel(phase=p).values]
            if theory is not None and p in theory.phase.values:
                rows[f"{p} theory"] = [f"{v:.3f}" for v in theory.sel(n=o.n.values.astype(float), method="nearest").sel(phase=p).values]
        rows["other SMC"] = [f"{v:.3f}" for v in o.share.sel(phase="other").values]
        if chains is not None:
            rows["other chains"] = [f"{v:.3f}" for v in chains.share.sel(phase="other").values]
        return pd.DataFrame(rows)


def _dataset_dF(smc, cat, seeds) -> xr.DataArray:
    """F₅(D_n) − F₆(D_n) by the per-dataset Laplace expansion on each seed's dataset, (n, seed)."""
    from ..inference.sweep import dataset
    from ..theory.laplace import dataset_free_energies

    st = smc.sweep_settings
    rows = []
    for s in seeds:
        ds = dataset_free_energies(cat, ["5", "6"], dataset(st, int(s))["X"], list(st.n), sigma=st.resolved_sigma(), beta=st.beta_for(st.n[0]))
        rows.append((ds.free_energy.sel(phase="5") - ds.free_energy.sel(phase="6")).values)
    return xr.DataArray(np.array(rows).T, dims=("n", "seed"), coords={"n": list(st.n), "seed": list(seeds)}, name="theory_dF")


def smc_report(smc, out, *, loss_min: xr.DataArray | None = None, chains: xr.Dataset | None = None, phases=("5", "5+", "6"),
               thresholds: Rule | None = None, seed: int = 0, dataset_theory: bool = True) -> SMCReport:
    """Analyse a finished SMC run (module docstring).  ``loss_min`` (from
    :func:`tms_bayes.inference.smc_sweep.phase_minima`) enables λ from growth; ``chains`` (an
    :func:`~tms_bayes.analysis.occupancy.empirical_occupancy` Dataset of a NUTS sweep on the same
    grid) adds the chain-share estimator.  ``dataset_theory`` adds the first table: SMC against the
    per-dataset Laplace expansion as log-odds F₅ − F₆ with a verdict per n (about 40 s per dataset)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    st = smc.sweep_settings
    labels = smc_labels(smc, thresholds)
    occ = smc_occupancy(labels, seed=seed)
    F_phase = phase_free_energy(labels, occ)
    cat = critical_points(st.c)
    phases = [p for p in phases if p in cat.phase.values]
    fine = np.unique(np.round(np.linspace(min(st.n), max(st.n), 400)))
    theory_occ = theoretical_occupancy(cat, phases, fine)
    theory_F = phase_free_energies(cat, phases, np.array(st.n, dtype=float))
    try:  # Laplace with every O(1) term (population potential), at the run's likelihood scale
        laplace_F = phase_free_energies(cat, phases, np.array(st.n, dtype=float), convention="laplace",
                                        sigma=st.resolved_sigma(), beta=st.beta_for(st.n[0]))
    except ValueError:
        laplace_F = None
    crossovers = []
    if "5" in phases and "6" in phases:
        crossovers.append({**theory_crossover_interval(cat, "5", "6"), "kind": "theory"})
        if laplace_F is not None:
            roots = theory_crossovers(cat, "5", "6", convention="laplace", sigma=st.resolved_sigma(), beta=st.beta_for(st.n[0]))
            crossovers.append({"from": "5", "to": "6", "n_crit": roots[-1]["n"] if roots else math.nan, "lower": math.nan,
                               "upper": math.nan, "kind": "theory (Laplace)"})
        for kind, o in (("smc", occ), ("chains", chains)):
            if o is not None and {"5", "6"} <= set(map(str, o.phase.values)):
                crossovers.append({**empirical_crossover(o, "5", "6"), "kind": kind})
    growth = None
    if loss_min is not None:
        measured = [p for p in phases if p in F_phase.phase.values and p in loss_min.phase.values]
        growth = lambda_from_growth(F_phase.sel(phase=measured), loss_min, occ, measured)
        lam_theory = {p: float(cat.lambda_.sel(phase=p)) for p in growth.phase.values}
        growth["lambda_theory"] = ("phase", np.array([lam_theory[p] for p in growth.phase.values]))
    rep = SMCReport(labels, occ, F_phase, crossovers, growth, chains)
    if dataset_theory and {"5", "6"} <= set(phases):
        rep.agreement = agreement(occ, _dataset_dF(smc, cat, labels.seed.values), chains_occ=chains)
        files_extra = {"agreement_csv": write_text(out / "agreement.csv", rep.agreement_table().to_csv(index=False))}
    else:
        files_extra = {}
    files = {}
    files["labels"] = write_netcdf(out / "smc_labels.nc", labels)
    files["occupancy"] = write_netcdf(out / "smc_occupancy.nc", occ.drop_vars("bootstrap"))
    table = rep.occupancy_table(phases, theory_occ)
    files["occupancy_csv"] = write_text(out / "occupancy_estimators.csv", table.to_csv(index=False))
    fe = F_phase.to_dataframe().reset_index()
    tf = theory_F.to_dataframe(name="F_theory").reset_index()
    fe = fe.merge(tf, on=["n", "phase"], how="left")
    if laplace_F is not None:
        fe = fe.merge(laplace_F.to_dataframe(name="F_laplace").reset_index()[["n", "phase", "F_laplace"]], on=["n", "phase"], how="left")
    if loss_min is not None:
        fe = fe.merge(loss_min.to_dataframe().reset_index(), on=["n", "seed", "phase"], how="left")
    files["free_energy_csv"] = write_text(out / "free_energy.csv", fe.to_csv(index=False))
    if growth is not None:
        files["lambda_csv"] = write_text(out / "lambda_growth.csv", growth[["lambda", "se", "lower", "upper", "seeds_used", "points", "lambda_theory"]].to_dataframe().reset_index().to_csv(index=False))
    files["occupancy_png"] = write_figure(out / "occupancy_estimators.png", plots.occupancy_estimators(occ, chains, theory_occ, crossovers, phases=phases))
    files["free_energy_png"] = write_figure(out / "free_energy.png", plots.phase_free_energy(F_phase, theory_F, growth, phases=phases))
    files.update(files_extra)
    rep.files = files
    files["report"] = write_text(out / "report.md", _markdown(rep, smc, table))
    return rep


def _fmt(x, nd=1):
    return "–" if not (isinstance(x, (int, float)) and math.isfinite(x)) else f"{x:.{nd}f}"


def _markdown(rep: SMCReport, smc, table: pd.DataFrame) -> str:
    st, ss = smc.sweep_settings, smc.settings
    ev = smc.evidence()
    md = (lambda df: df.to_markdown(index=False)) if _has_tabulate() else (lambda df: df.to_string(index=False))
    lines = [
        f"# Posterior mass and free energy per phase (TMS c = {st.c}, SMC)",
        "",
        f"SMC `{smc.out}`: {ss.particles} particles, CESS target {ss.cess_target}, resampling below ESS {ss.resample_threshold}·P, "
        f"{ss.mcmc_steps} HMC moves × {ss.leapfrog_steps} leapfrog steps per stage; {len(smc.completed)} seeds (datasets); grid n = {list(st.n)}.",
        f"Wall time: {ev.groupby('seed').wall_time_s.first().sum():.0f} s over all seeds.",
        "",
        *(["## Agreement: SMC posterior mass vs the per-dataset Laplace theory (log-odds ΔF = F₅ − F₆)", "",
            md(rep.agreement_table()), "",
            f"Paired over the {rep.agreement.attrs['datasets']} datasets: {rep.agreement.attrs['verdict']}. "
            f"Verdicts: {', '.join(f'{v} {int((rep.agreement.verdict == v).sum())}' for v in ('agree', 'disagree', 'not comparable'))}.", ""]
           if rep.agreement is not None else []),
        "## Occupancy: posterior mass (SMC, 95 % bootstrap over seeds) vs NUTS chain shares vs theory",
        "",
        md(table),
        "",
        "All shares are renormalised over the phases shown (the theory's normalisation); 'other' is the measured mass outside them. "
        "NUTS chains cross between the 5, 5+ and 6 phases only slowly, so chain shares are an MCMC estimate of posterior mass "
        "that may not have converged; SMC shares are posterior mass (the weights move mass between phases as data arrive).",
        "",
        "| crossover 5 → 6 | n_crit | interval |",
        "|---|---|---|",
    ]
    for c in rep.crossovers:
        lines.append(f"| {c['kind']} | {_fmt(c['n_crit'])} | [{_fmt(c.get('lower'))}, {_fmt(c.get('upper'))}] |")
    lines += ["", "![occupancy](occupancy_estimators.png)", "", "## Free energy per phase", "",
              "F_n(W_α) = F_n − log P̂(α | D_n) (loss convention −log ∫ φ e^{−n L_n}); theory: the paper's n L_α + λ_α log n + c_α "
              "(c_α = ½‖w*‖², column F_theory of free_energy.csv) and the Laplace expansion with every O(1) term on the population "
              "potential (F_laplace; on a dataset n L_n(ŵ_α) replaces n L_α, see theory.dataset_free_energies).", ""]
    F = rep.F_phase.mean("seed").to_pandas()
    lines.append(md(F.reset_index().round(2)))
    if rep.growth is not None:
        g = rep.growth
        lines += ["", "## λ from the growth of F_n(W_α) − n L_n(ŵ_α) in log n", "", "| phase | λ̂ (free energy) | 95 % interval | seeds | λ theory |", "|---|---|---|---|---|"]
        for p in g.phase.values:
            lines.append(f"| {p} | {_fmt(float(g['lambda'].sel(phase=p)), 2)} ± {_fmt(float(g.se.sel(phase=p)), 2)} | [{_fmt(float(g.lower.sel(phase=p)), 2)}, {_fmt(float(g.upper.sel(phase=p)), 2)}] | {int(g.seeds_used.sel(phase=p))} | {_fmt(float(g.lambda_theory.sel(phase=p)), 1)} |")
    lines += ["", "![free energy](free_energy.png)", ""]
    return "\n".join(lines)
