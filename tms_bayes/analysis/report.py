"""The occupancy report of a TMS sweep: tables, figures and ``report.md`` (all written atomically).

From a sweep directory: exact labels of every draw, empirical occupancy with bootstrap intervals,
the theoretical curves of the phases whose λ is known, the 5 → 6 crossover from each, the
unsupervised coarse-graining (t-SNE + HDBSCAN) and its agreement with the labels, a gallery of
representative polygons, and share against loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..store.atomic import write_figure, write_netcdf, write_text
from ..theory import critical_points, theoretical_occupancy
from ..theory import crossovers as theory_crossovers
from . import plots
from .coarse_grain import CoarseGrainer, agreement
from .occupancy import empirical_crossover, empirical_occupancy, sweep_labels, theory_crossover_interval
from .phases import UNCLASSIFIED, Rule, tms_features

__all__ = ["OccupancyReport", "write_occupancy_report"]


@dataclass
class OccupancyReport:
    occupancy: xr.Dataset
    theory: xr.DataArray
    crossovers: list[dict]
    ari: float
    n_clusters: int
    files: dict[str, Path] = field(default_factory=dict)

    def table(self, min_share: float = 0.005) -> pd.DataFrame:
        """Shares per n (rows) and phase (columns) for phases reaching ``min_share`` somewhere."""
        keep = [
            p
            for p in self.occupancy.phase.values
            if float(self.occupancy.share.sel(phase=p).max()) >= min_share or p == UNCLASSIFIED
        ]
        return self.occupancy.share.sel(phase=keep).to_pandas()

    def comparison(self) -> pd.DataFrame:
        """Shares renormalised over the theory's phases ("other" = the mass outside them) beside the
        theory, per n: the same normalisation on both sides (SPEC 2)."""
        from .occupancy import on_phases

        phases = list(map(str, self.theory.phase.values))
        occ = on_phases(self.occupancy, phases)
        th = self.theory.sel(n=occ.n.values.astype(float), method="nearest")
        cols = {}
        for p in phases:
            cols[f"{p} measured"] = occ.share.sel(phase=p).values
            cols[f"{p} theory"] = th.sel(phase=p).values
        cols["other (measured)"] = occ.share.sel(phase="other").values
        return pd.DataFrame(cols, index=pd.Index(occ.n.values, name="n"))

    def mixing(self) -> pd.DataFrame:
        """Per n: mixed, min and mean label transitions per chain, and R̂ / ESS of the phase indicators
        (NaN R̂: the indicator is constant — not assessable)."""
        o = self.occupancy
        df = pd.DataFrame(
            {
                "mixed": o.mixed.values,
                "min transitions": o.min_transitions.values,
                "mean transitions": o.transitions.mean(("seed", "chain")).values.round(1),
            },
            index=pd.Index(o.n.values, name="n"),
        )
        for p in o.mixing_phase.values:
            if str(p) in map(str, self.theory.phase.values):
                df[f"R̂ {p}"] = o.indicator_rhat.sel(mixing_phase=p).values.round(3)
                df[f"ESS {p}"] = o.indicator_ess.sel(mixing_phase=p).values.round(0)
        return df

    def text(self) -> str:
        lines = [
            "Empirical occupancy (share of draws; chain-share estimator: MCMC estimate of posterior mass, "
            "may be unconverged)",
            self.table().round(3).to_string(),
            "",
            "On the theory's normalisation "
            "(shares renormalised over its phases; 'other' = mass outside them)",
            self.comparison().round(3).to_string(),
            "",
        ]
        for cr in self.crossovers:
            if cr["kind"] == "theory":
                lines.append(
                    f"theory    {cr['from']} -> {cr['to']}: n_crit = {cr['n_crit']:.1f}  "
                    f"(paper's convention; |ΔF| <= 1 for n in [{cr['lower']:.0f}, {cr['upper']:.0f}])"
                )
            elif cr["kind"] == "theory (Laplace)":
                trust = "" if cr.get("trusted") else ", below the range where the expansion is trusted"
                lines.append(
                    f"theory    {cr['from']} -> {cr['to']}: n_crit = {cr['n_crit']:.1f}  "
                    f"(Laplace, every O(1) term{trust})"
                )
            else:
                point = (
                    "no crossing on the grid"
                    if not math.isfinite(cr["n_crit"])
                    else f"n_crit = {cr['n_crit']:.1f}"
                )
                lines.append(
                    f"empirical {cr['from']} -> {cr['to']}: {point}  "
                    f"(95% bootstrap interval [{cr['lower']:.0f}, {cr['upper']:.0f}] over the "
                    f"{100 * cr['fraction_crossing']:.0f}% of replicates that cross)"
                )
        lines.append(
            f"unsupervised coarse-graining: {self.n_clusters} clusters, "
            f"adjusted Rand index vs exact labels = {self.ari:.3f}"
        )
        if "mixed" in self.occupancy:
            lines += [
                "",
                "Mixing between phases (an n is mixed only if every chain changes label at least once):",
                self.mixing().to_string(),
            ]
            unmixed = [int(n) for n, m in zip(self.occupancy.n.values, self.occupancy.mixed.values) if not m]
            if unmixed:
                lines.append(
                    f"UNMIXED n (chain shares there depend on where chains started; drawn hollow): {unmixed}"
                )
        return "\n".join(lines)


def _gallery_samples(sweep, labels: xr.Dataset, occ: xr.Dataset, min_share: float = 0.005) -> dict:
    """The lowest-L_n draw of each phase with share ≥ ``min_share`` somewhere."""
    out = {}
    lab = labels["label"].values
    for p in occ.phase.values:
        if p == UNCLASSIFIED or float(occ.share.sel(phase=p).max()) < min_share:
            continue
        L = np.where(lab == p, labels["L_n"].values, np.inf)
        i, j, ch, d = np.unravel_index(np.argmin(L), L.shape)
        post = sweep.load(int(labels.n.values[i]), int(labels.seed.values[j])).posterior
        out[f"{p} (n={int(labels.n.values[i])})"] = (post["W"].values[ch, d], post["b"].values[ch, d])
    return out


def _features(sweep, labels: xr.Dataset, max_samples: int, seed: int):
    """Invariant features and exact labels of a fixed-seed subsample of all draws."""
    lab = labels["label"].values
    total = lab.size
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(max_samples, total), replace=False))
    coords = np.unravel_index(pick, lab.shape)
    feats = []
    for i in range(lab.shape[0]):
        for j in range(lab.shape[1]):
            sel = (coords[0] == i) & (coords[1] == j)
            if not sel.any():
                continue
            post = sweep.load(int(labels.n.values[i]), int(labels.seed.values[j])).posterior
            W = post["W"].values[coords[2][sel], coords[3][sel]]
            b = post["b"].values[coords[2][sel], coords[3][sel]]
            feats.append((np.flatnonzero(sel), tms_features(W, b)))
    X = np.zeros((pick.size, feats[0][1].shape[1]))
    for rows, f in feats:
        X[rows] = f
    return X, lab.reshape(-1)[pick]


def write_occupancy_report(
    sweep,
    out=None,
    *,
    theory_phases=("5", "5+", "6"),
    crossover_pair=("5", "6"),
    thresholds: Rule | None = None,
    max_tsne_samples: int = 3000,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> OccupancyReport:
    """Analyse the TMS sweep ``sweep`` (a :class:`~tms_bayes.inference.sweep.Sweep`) and write the report
    into ``out`` (default: the sweep's directory).  :func:`tms_bayes.experiments.occupancy.occupancy_report`
    does the same from a directory."""
    out = Path(out) if out is not None else Path(sweep.out)
    labels = sweep_labels(sweep, thresholds, progress=progress)
    occ = empirical_occupancy(labels, n_boot=n_boot, seed=seed)
    cat = critical_points(sweep.settings.c, sweep.settings.r)
    n = occ.n.values
    grid = np.linspace(n.min(), n.max(), 200)
    # the energy n_eff L_n, n_eff = nβ/(2σ²), in every theory curve
    scale = sweep.settings.likelihood_scale()
    theory = theoretical_occupancy(cat, list(theory_phases), grid, **scale)
    a, b = crossover_pair
    crossovers = [{**theory_crossover_interval(cat, a, b, **scale), "kind": "theory"}]
    try:  # the Laplace expansion with every O(1) term
        roots = theory_crossovers(cat, a, b, convention="laplace", **scale)
        crossovers.append(
            {
                "from": a,
                "to": b,
                "n_crit": roots[-1]["n"] if roots else math.nan,
                "lower": math.nan,
                "upper": math.nan,
                "kind": "theory (Laplace)",
                "trusted": bool(roots and roots[-1]["trusted"]),
            }
        )
    except ValueError:  # a phase outside the Laplace expansion's reach
        pass
    if a in occ.phase.values and b in occ.phase.values:
        crossovers.append({**empirical_crossover(occ, a, b), "kind": "empirical"})
    else:
        crossovers.append(
            {
                "from": a,
                "to": b,
                "n_crit": math.nan,
                "lower": math.nan,
                "upper": math.nan,
                "fraction_crossing": 0.0,
                "kind": "empirical",
            }
        )

    X, exact = _features(sweep, labels, max_tsne_samples, seed)
    cg = CoarseGrainer(max_samples=max_tsne_samples, random_state=seed).fit(X)
    ari = agreement(exact[cg.sample_index_], cg.labels_)
    occ.attrs.update(
        {"adjusted_rand_index": ari, "n_clusters": cg.n_clusters_, "theory_phases": ",".join(theory_phases)}
    )
    for cr in crossovers:
        occ.attrs[f"crossover_{cr['kind']}"] = (
            f"{cr['from']}->{cr['to']}: n_crit={cr['n_crit']:.2f} [{cr['lower']:.1f}, {cr['upper']:.1f}]"
        )

    report = OccupancyReport(occ, theory, crossovers, ari, cg.n_clusters_)
    files = report.files
    files["occupancy.nc"] = write_netcdf(out / "occupancy.nc", occ)
    files["occupancy.csv"] = write_text(out / "occupancy.csv", report.table().to_csv())
    files["occupancy.png"] = write_figure(
        out / "occupancy.png", plots.empirical_occupancy(occ, theory, crossovers)
    )
    files["tsne.png"] = write_figure(
        out / "tsne.png", plots.embedding(cg.embedding_, exact[cg.sample_index_], cg.labels_, ari=ari)
    )
    files["gallery.png"] = write_figure(
        out / "gallery.png", plots.gallery(_gallery_samples(sweep, labels, occ))
    )
    files["share_vs_loss.png"] = write_figure(out / "share_vs_loss.png", plots.share_vs_loss(occ, cat))
    files["report.md"] = write_text(out / "report.md", _markdown(report, sweep))
    return report


def _markdown(report: OccupancyReport, sweep) -> str:
    st = sweep.settings
    unc = report.occupancy.share.sel(phase=UNCLASSIFIED).to_pandas()
    diag = pd.read_csv(sweep.out / "diagnostics.csv") if (sweep.out / "diagnostics.csv").exists() else None
    from .diagnostics import format_table

    return f"""# Phase occupancy report — TMS c = {st.c}, r = {st.r}

tms-bayes {__version__}. Sweep `{sweep.out}`: n = {list(st.n)}, {st.seeds} seeds (datasets), \
{st.chains} chains per
(n, seed), {st.tune} tuning + {st.draws} kept draws, backend {st.backend} ({st.chain_method}), \
σ = {st.resolved_sigma():.4f}, β = {st.beta_for(st.n[0]):g}.

## What is measured
Each draw is labelled k^{{σ+,φ−}} by \
{report.occupancy.attrs.get("classifier_rule", "the exact classifier")}.
The share of a phase is the fraction of draws carrying its label, pooled over seeds and chains.
**This is a chain-share estimator**: NUTS chains do cross between the 5, 5+ and 6 phases, but slowly
(hundreds of draws at n ≈ 600), so a chain share is an MCMC estimate of posterior mass that may not
have converged, and its value depends on the run's length and starting points. Intervals:
{report.occupancy.attrs["interval"]}.

## Occupancy

{report.table().round(3).to_markdown() if _has_tabulate() else report.table().round(3).to_string()}

![occupancy](occupancy.png)

## Crossovers

| kind | transition | n_crit | interval |
|---|---|---|---|
{
        chr(10).join(
            f"| {c['kind']} | {c['from']} → {c['to']} | {c['n_crit']:.1f} | "
            f"[{c['lower']:.0f}, {c['upper']:.0f}] |"
            for c in report.crossovers
        )
    }

Theory (paper's convention) interval: n where |F_α − F_β| ≤ 1. Theory (Laplace): every O(1) term of the
expansion (`tms-bayes theory` prints them); below n ≈ 300 it is not yet accurate. Empirical interval:
percentiles of the hierarchical bootstrap (datasets, then chains).

## On the theory's normalisation

Shares renormalised over the theory's phases; "other" is the measured mass outside them.

{(lambda df: df.to_markdown() if _has_tabulate() else df.to_string())(report.comparison().round(3))}

## Mixing between phases

An n is *mixed* only if every chain changes phase label at least once; R̂ and bulk ESS are those of the
phase indicators 1[label = α] over the chains of each dataset (R̂: max over datasets; NaN = the indicator
is constant, not assessable; ∞ = every chain stuck in its own phase).

{(lambda df: df.to_markdown() if _has_tabulate() else df.to_string())(report.mixing())}

{
        "**Unmixed n** (drawn hollow; their chain shares depend on where the chains started): "
        + ", ".join(
            str(int(n)) for n, m in zip(report.occupancy.n.values, report.occupancy.mixed.values) if not m
        )
        if not bool(report.occupancy.mixed.all())
        else "Every n is mixed."
    }

## Unclassified share per n

{unc.round(3).to_frame("unclassified").T.to_string()}

## Unsupervised coarse-graining
t-SNE of the symmetry-normalised samples, clustered by HDBSCAN without the labels:
{report.n_clusters} clusters, **adjusted Rand index {report.ari:.3f}** against the exact labels.

![t-SNE](tsne.png)

## Representative polygons (lowest-loss draw of each phase)

![gallery](gallery.png)

![share vs loss](share_vs_loss.png)

## Sampler diagnostics (invariant quantities)

```
{format_table(diag) if diag is not None else "(none)"}
```
"""


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401

        return True
    except ImportError:
        return False
