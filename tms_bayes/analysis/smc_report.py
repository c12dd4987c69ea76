"""The free-energy report of an SMC run across n: occupancy by posterior mass beside the chain
shares and theory, crossovers from each, F_n(W_α) against theory, and λ from the free energy's growth.

Files (atomic) under ``out/``: ``smc_labels.nc``, ``smc_occupancy.nc``, ``occupancy_estimators.csv``,
``free_energy.csv``, ``lambda_growth.csv``, ``occupancy_estimators.png``, ``free_energy.png``,
``report.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..store.atomic import write_figure, write_netcdf, write_text
from ..store.netcdf import open_dataarray
from ..theory import critical_points, phase_free_energies, theoretical_occupancy
from ..theory import crossovers as theory_crossovers
from ..theory.free_energy import TRUSTED_FROM
from ..theory.laplace import n_effective
from ..theory.regions import DEFAULT_DEAD_TOL
from . import plots
from .free_energy import (
    agreement,
    lambda_from_growth,
    log_odds,
    log_odds_crossover,
    phase_free_energy,
    repeat_labels,
    repeat_spread,
    smc_labels,
    smc_occupancy,
)
from .occupancy import theory_crossover_interval
from .phases import FunctionalRule, Rule
from .report import _has_tabulate

__all__ = ["SMCReport", "smc_report", "per_dataset_theory", "crossover_frame"]


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
        df = pd.DataFrame(
            {
                "n": a.n.values,
                "SMC ΔF": a.smc_dF.values,
                "± SE": a.smc_se.values,
                "theory ΔF": a.theory_dF.values,
                "SMC − theory": a.difference.values,
                "± SE ": a.difference_se.values,
                "min ESS": a.min_phase_ess.values,
                "verdict": a.verdict.values,
                "why": a.why.values,
            }
        )
        df.insert(3, "SD datasets", a.smc_sd.values)
        if "shell_log_ratio" in a:
            df.insert(df.columns.get_loc("theory ΔF") + 1, "of which shell", -a.shell_log_ratio.values)
        if "smc_sd_runs" in a:
            df.insert(4, "SD SMC runs", a.smc_sd_runs.values)
        if "chains_dF" in a:
            df.insert(df.columns.get_loc("verdict") + 2, "chains ΔF", a.chains_dF.values)
        if "chains_verdict" in a:
            df.insert(df.columns.get_loc("chains ΔF") + 1, "chains − SMC", a.chains_minus_smc.values)
            df.insert(df.columns.get_loc("chains − SMC") + 1, "± SE  ", a.chains_minus_smc_se.values)
            df.insert(df.columns.get_loc("± SE  ") + 1, "chains vs SMC", a.chains_verdict.values)
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
                rows[f"{p} theory"] = [
                    f"{v:.3f}"
                    for v in theory.sel(n=o.n.values.astype(float), method="nearest").sel(phase=p).values
                ]
        rows["other SMC"] = [f"{v:.3f}" for v in o.share.sel(phase="other").values]
        if chains is not None:
            rows["other chains"] = [f"{v:.3f}" for v in chains.share.sel(phase="other").values]
        return pd.DataFrame(rows)


def per_dataset_theory(smc, seeds=None, *, progress: bool = False) -> xr.DataArray:
    """F₅(D_n) − F₆(D_n) by the per-dataset Laplace expansion
    (:func:`tms_bayes.theory.laplace.dataset_free_energies`) on each seed's dataset, (n, seed).

    About a minute per dataset, so each seed's result is kept in ``<smc>/dataset_theory/seed{s}.nc``
    (atomic) and read back when the grid, σ, β and prior match; ``tms-bayes run`` computes them in its
    background process right after the SMC runs."""
    from tqdm.auto import tqdm

    from ..theory import critical_points
    from ..theory.laplace import dataset_free_energies

    st = smc.sweep_settings
    seeds = sorted(smc.completed) if seeds is None else [int(s) for s in seeds]
    scale = {**st.likelihood_scale(), "prior_std": st.prior_std}
    cat = None
    rows = []
    for s in tqdm(seeds, desc="per-dataset theory", unit="dataset", disable=not progress, leave=False):
        path = Path(smc.out) / "dataset_theory" / f"seed{s:03d}.nc"
        key = {"n": list(map(int, st.n)), "data_seed": st.seed_offset + s, "c": st.c, "r": st.r, **scale}
        cached = None
        if path.exists():
            with open_dataarray(path) as da:
                if json.loads(da.attrs.get("key", "{}")) == key:
                    cached = da.load()
        if cached is None:
            cat = critical_points(st.c, st.r) if cat is None else cat
            ds = dataset_free_energies(cat, ["5", "6"], smc.dataset(s)["X"], list(st.n), **scale)
            cached = (ds.free_energy.sel(phase="5") - ds.free_energy.sel(phase="6")).drop_vars(
                "phase", errors="ignore"
            )
            cached.attrs = {
                "key": json.dumps(key),
                "formula": ds.attrs.get("formula", ""),
                "log_odds": "F_5 - F_6",
            }
            write_netcdf(path, cached.rename("theory_dF"))
        rows.append(np.asarray(cached.values))
    return xr.DataArray(
        np.array(rows).T, dims=("n", "seed"), coords={"n": list(st.n), "seed": seeds}, name="theory_dF"
    )


def smc_report(
    smc,
    out,
    *,
    loss_min: xr.DataArray | None = None,
    chains: xr.Dataset | None = None,
    phases=("5", "5+", "6"),
    thresholds: Rule | None = None,
    seed: int = 0,
    dataset_theory: bool = True,
) -> SMCReport:
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
    scale = (
        st.likelihood_scale()
    )  # the energy n_eff L_n, n_eff = nβ/(2σ²), in every theory curve and in λ from growth
    theory_occ = theoretical_occupancy(cat, phases, fine, **scale)
    theory_F = phase_free_energies(cat, phases, np.array(st.n, dtype=float), **scale)
    try:  # Laplace with every O(1) term (population potential)
        laplace_F = phase_free_energies(
            cat, phases, np.array(st.n, dtype=float), convention="laplace", **scale
        )
    except ValueError:
        laplace_F = None
    crossovers = []
    if "5" in phases and "6" in phases:
        crossovers.append({**theory_crossover_interval(cat, "5", "6", **scale), "kind": "theory"})
        if laplace_F is not None:
            roots = theory_crossovers(cat, "5", "6", convention="laplace", **scale)
            crossovers.append(
                {
                    "from": "5",
                    "to": "6",
                    "n_crit": roots[-1]["n"] if roots else math.nan,
                    "lower": math.nan,
                    "upper": math.nan,
                    "kind": "theory (Laplace)",
                }
            )
        for kind, o in (
            ("smc", occ),
            ("chains", chains),
        ):  # per dataset from the log-odds; ≤ 6 datasets: min–max
            if o is not None:
                crossovers.append(
                    {"from": "5", "to": "6", **log_odds_crossover(log_odds(o.share_seed)), "kind": kind}
                )
    growth = None
    if loss_min is not None:
        measured = [p for p in phases if p in F_phase.phase.values and p in loss_min.phase.values]
        growth = lambda_from_growth(
            F_phase.sel(phase=measured),
            loss_min,
            occ,
            measured,
            n_eff=n_effective(np.array(st.n, dtype=float), **scale),
        )
        lam_theory = {p: float(cat.lambda_.sel(phase=p)) for p in growth.phase.values}
        growth["lambda_theory"] = ("phase", np.array([lam_theory[p] for p in growth.phase.values]))
    rep = SMCReport(labels, occ, F_phase, crossovers, growth, chains)
    files_extra = {}
    if dataset_theory and {"5", "6"} <= set(phases):
        reps = repeat_labels(smc, thresholds)
        flat_dF = per_dataset_theory(smc, labels.seed.values)
        # like for like: the theory's 5-gon region widened to the classifier's (the flat region's shell)
        tol = thresholds.dead_tol if isinstance(thresholds, FunctionalRule) else DEFAULT_DEAD_TOL
        shell = _shell_dF(cat, np.array(st.n, dtype=float), tol, scale, st.prior_std)
        theory_dF = flat_dF - shell
        rep.agreement = agreement(
            occ,
            theory_dF,
            chains_occ=chains,
            repeats=repeat_spread(reps) if reps is not None else None,
            trusted_from=TRUSTED_FROM / float(n_effective(1.0, **scale)),
        )  # TRUSTED_FROM is in n_eff
        rep.agreement["theory_dF_seed"] = theory_dF
        rep.agreement["theory_dF_flat"] = flat_dF.mean("seed")
        rep.agreement["shell_log_ratio"] = ("n", shell.values)
        rep.agreement["paper_dF"] = ("n", (theory_F.sel(phase="5") - theory_F.sel(phase="6")).values)
        if laplace_F is not None:
            rep.agreement["laplace_dF"] = ("n", (laplace_F.sel(phase="5") - laplace_F.sel(phase="6")).values)
        rep.agreement.attrs["region"] = (
            f"the classifier's: dead columns up to dead_tol = {tol:g} (the flat region and its shell); "
            "theory = per-dataset Laplace (flat region) − log R(n), R from theory.laplace.region_log_ratio"
        )
        rep.agreement["smc_dF_seed"] = log_odds(occ.share_seed)
        crossovers.insert(
            sum(c["kind"].startswith("theory") for c in crossovers),
            {
                "from": "5",
                "to": "6",
                **log_odds_crossover(theory_dF),
                "kind": "theory (Laplace, per dataset)",
            },
        )
        files_extra["agreement_csv"] = write_text(
            out / "agreement.csv", rep.agreement_table().to_csv(index=False)
        )
        files_extra["agreement_nc"] = write_netcdf(out / "agreement.nc", rep.agreement.assign_attrs(**scale))
    files = {}
    files["labels"] = write_netcdf(out / "smc_labels.nc", labels)
    files["occupancy"] = write_netcdf(out / "smc_occupancy.nc", occ.drop_vars("bootstrap"))
    table = rep.occupancy_table(phases, theory_occ)
    files["occupancy_csv"] = write_text(out / "occupancy_estimators.csv", table.to_csv(index=False))
    fe = F_phase.to_dataframe().reset_index()
    tf = theory_F.to_dataframe(name="F_theory").reset_index()
    fe = fe.merge(tf, on=["n", "phase"], how="left")
    if laplace_F is not None:
        fe = fe.merge(
            laplace_F.to_dataframe(name="F_laplace").reset_index()[["n", "phase", "F_laplace"]],
            on=["n", "phase"],
            how="left",
        )
    if loss_min is not None:
        fe = fe.merge(loss_min.to_dataframe().reset_index(), on=["n", "seed", "phase"], how="left")
    files["free_energy_csv"] = write_text(out / "free_energy.csv", fe.to_csv(index=False))
    if growth is not None:
        files["lambda_csv"] = write_text(
            out / "lambda_growth.csv",
            growth[["lambda", "se", "lower", "upper", "seeds_used", "points", "lambda_theory"]]
            .to_dataframe()
            .reset_index()
            .to_csv(index=False),
        )
    files["occupancy_png"] = write_figure(
        out / "occupancy_estimators.png",
        plots.occupancy_estimators(occ, chains, theory_occ, crossovers, phases=phases),
    )
    files["free_energy_png"] = write_figure(
        out / "free_energy.png", plots.phase_free_energy(F_phase, theory_F, growth, phases=phases)
    )
    files.update(files_extra)
    if rep.agreement is not None:
        files["log_odds_png"] = write_figure(
            out / "log_odds.png",
            plots.log_odds(
                rep.agreement,
                title=f"F₅ − F₆ (σ = {scale['sigma']:.3g}, β = {scale['beta']:g}, "
                f"{rep.agreement.attrs['datasets']} datasets)",
            ),
        )
    files["crossovers_csv"] = write_text(
        out / "crossovers.csv", crossover_frame(crossovers, scale).to_csv(index=False)
    )
    rep.files = files
    files["report"] = write_text(out / "report.md", _markdown(rep, smc, table))
    return rep


def _shell_dF(cat, n, tol: float, scale: dict, prior_std: float) -> xr.DataArray:
    """log R₅(n) − log R₆(n): the extra log-mass of each phase's region at dead tolerance ``tol`` over
    its flat region (:func:`tms_bayes.theory.laplace.region_log_ratio`), so that
    ΔF(τ) = ΔF(flat) − this."""
    from ..theory.laplace import n_effective, region_log_ratio

    ne = n_effective(n, **scale)
    lr = (
        region_log_ratio(cat, "5", ne, tol=tol, prior_std=prior_std)[0]
        - region_log_ratio(cat, "6", ne, tol=tol, prior_std=prior_std)[0]
    )
    return xr.DataArray(lr, dims="n", coords={"n": n.astype(int)}, name="shell_log_ratio")


def _disagreements(a: xr.Dataset) -> list[str]:
    """Markdown lines listing each n where SMC and theory disagree, with what was measured there."""
    bad = [i for i, v in enumerate(a.verdict.values) if v == "disagree"]
    if not bad:
        return ["No comparable n disagrees.", ""]
    lines = ["Disagreements (beyond 2 SE of the paired difference), with what was measured there:", ""]
    for i in bad:
        runs = (
            f"; SD over SMC runs on one dataset {float(a.smc_sd_runs[i]):.2f}" if "smc_sd_runs" in a else ""
        )
        lines.append(
            f"- n = {int(a.n[i])}: SMC − theory = {float(a.difference[i]):+.2f} "
            f"± {float(a.difference_se[i]):.2f}; "
            f"min effective particles {float(a.min_phase_ess[i]):.0f}; "
            f"SD over datasets {float(a.smc_sd[i]):.2f}{runs}"
        )
    return [*lines, ""]


def crossover_frame(crossovers: list[dict], scale: dict) -> pd.DataFrame:
    """The 5 → 6 crossovers of a report as a table: estimator, n_crit, interval, how the interval was
    made, the per-dataset crossovers, and the likelihood scale (σ, β) they were measured at."""
    rows = [
        {
            "estimator": c["kind"],
            "n_crit": c["n_crit"],
            "lower": c.get("lower", math.nan),
            "upper": c.get("upper", math.nan),
            "interval": c.get("interval", "band |ΔF| ≤ 1" if c["kind"] == "theory" else ""),
            "per_dataset": " ".join(f"{v:.1f}" for v in c.get("per_dataset", [])),
            "sigma": scale["sigma"],
            "beta": scale["beta"],
        }
        for c in crossovers
    ]
    return pd.DataFrame(rows)


def _fmt(x, nd=1):
    return "–" if not (isinstance(x, (int, float)) and math.isfinite(x)) else f"{x:.{nd}f}"


def _markdown(rep: SMCReport, smc, table: pd.DataFrame) -> str:
    st, ss = smc.sweep_settings, smc.settings
    ev = smc.evidence()
    md = (
        (lambda df: df.to_markdown(index=False))
        if _has_tabulate()
        else (lambda df: df.to_string(index=False))
    )
    lines = [
        f"# Posterior mass and free energy per phase (TMS c = {st.c}, SMC)",
        "",
        f"SMC `{smc.out}`: {ss.particles} particles, CESS target {ss.cess_target}, "
        f"resampling below ESS {ss.resample_threshold}·P, "
        f"{ss.mcmc_steps} HMC moves × {ss.leapfrog_steps} leapfrog steps per stage; "
        f"{len(smc.completed)} seeds (datasets); grid n = {list(st.n)}.",
        f"Wall time: {ev.groupby('seed').wall_time_s.first().sum():.0f} s over all seeds.",
        "",
        *(
            [
                "## Agreement: SMC posterior mass vs the per-dataset Laplace theory (log-odds ΔF = F₅ − F₆)",
                "",
                md(rep.agreement_table()),
                "",
                "![log-odds](log_odds.png)",
                "",
                f"Paired over the {rep.agreement.attrs['datasets']} datasets: "
                f"{rep.agreement.attrs['verdict']}. "
                "Verdicts: "
                f"""{
                    ", ".join(
                        f"{v} {int((rep.agreement.verdict == v).sum())}"
                        for v in ("agree", "disagree", "not comparable")
                    )
                }. """
                "Theory: the per-dataset Laplace expansion (theory.dataset_free_energies, flat region of "
                "the dead column) on the classifier's region — its 5-gon also holds the dead column's "
                "cubic shell, which adds log R₅(n) of mass (theory.laplace.region_log_ratio; column 'of "
                "which shell' = −log R₅). SD datasets: the standard deviation of SMC's ΔF over "
                "datasets (data and sampler); "
                + (
                    f"SD SMC runs: over {rep.agreement.attrs['runs_on_one_dataset']} independent SMC runs "
                    "on dataset 0 (the sampler alone)."
                    if "smc_sd_runs" in rep.agreement
                    else "run with repeats > 1 for the sampler's own spread."
                ),
                "",
                *_disagreements(rep.agreement),
            ]
            if rep.agreement is not None
            else []
        ),
        "## Occupancy: posterior mass (SMC, 95 % bootstrap over seeds) vs NUTS chain shares vs theory",
        "",
        md(table),
        "",
        "All shares are renormalised over the phases shown (the theory's normalisation); 'other' is the "
        "measured mass outside them. NUTS chains cross between the 5, 5+ and 6 phases only slowly, so chain "
        "shares are an MCMC estimate of posterior mass that may not have converged; SMC shares are "
        "posterior mass (the weights move mass between phases as data arrive).",
        "",
        "| crossover 5 → 6 | n_crit | interval | how | per dataset |",
        "|---|---|---|---|---|",
    ]
    for c in rep.crossovers:
        per = ", ".join(_fmt(v) for v in c.get("per_dataset", []))
        lines.append(
            f"| {c['kind']} | {_fmt(c['n_crit'])} | [{_fmt(c.get('lower'))}, {_fmt(c.get('upper'))}] | "
            f"{c.get('interval', '')} | {per} |"
        )
    lines += [
        "",
        "![occupancy](occupancy_estimators.png)",
        "",
        "## Free energy per phase",
        "",
        "F_n(W_α) = F_n − log P̂(α | D_n) (loss convention −log ∫ φ e^{−n L_n}); theory: the "
        "paper's n L_α + λ_α log n + c_α (c_α = ½‖w*‖², column F_theory of free_energy.csv) and "
        "the Laplace expansion with every O(1) term on the population potential (F_laplace; on a dataset n "
        "L_n(ŵ_α) replaces n L_α, see theory.dataset_free_energies).",
        "",
    ]
    F = rep.F_phase.mean("seed").to_pandas()
    lines.append(md(F.reset_index().round(2)))
    if rep.growth is not None:
        g = rep.growth
        lines += [
            "",
            "## λ from the growth of F_n(W_α) − n_eff L_n(ŵ_α) in log n (n_eff = nβ/(2σ²))",
            "",
            "| phase | λ̂ (free energy) | 95 % interval | seeds | λ theory |",
            "|---|---|---|---|---|",
        ]
        for p in g.phase.values:
            lines.append(
                f"| {p} | {_fmt(float(g['lambda'].sel(phase=p)), 2)} "
                f"± {_fmt(float(g.se.sel(phase=p)), 2)} | "
                f"[{_fmt(float(g.lower.sel(phase=p)), 2)}, {_fmt(float(g.upper.sel(phase=p)), 2)}] | "
                f"{int(g.seeds_used.sel(phase=p))} | {_fmt(float(g.lambda_theory.sel(phase=p)), 1)} |"
            )
    lines += ["", "![free energy](free_energy.png)", ""]
    return "\n".join(lines)
