"""Figures.  Every function returns a ``matplotlib.figure.Figure`` built without pyplot's global
state (safe headless and in threads); save it with :func:`tms_bayes.store.atomic.write_figure`
or let a notebook display it."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

__all__ = [
    "energy_levels",
    "occupancy_curves",
    "one_dim_free_energies",
    "merge_free_energies",
    "polygon",
    "empirical_occupancy",
    "embedding",
    "gallery",
    "share_vs_loss",
    "llc_calibration",
    "dynamics_trajectory",
    "loss_complexity",
    "phase_fractions",
    "phase_min_loss",
    "effective_weights_grid",
    "raw_vs_effective",
    "occupancy_estimators",
    "phase_free_energy",
]


def _new(ax=None, figsize=(6.4, 4.2)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def energy_levels(catalogue: xr.Dataset, ax=None) -> Figure:
    """Energy-level diagram: L(w*) against λ for catalogue points where λ is known; points of
    unknown λ are drawn as ticks in a separate strip on the right, labelled "λ unknown"."""
    fig, ax = _new(ax)
    lam = catalogue["lambda_"].values
    loss = catalogue["loss"].values
    names = catalogue.phase.values
    known = np.isfinite(lam)
    ax.scatter(lam[known], loss[known], color="C0", zorder=3, label="λ from theory")
    for x, y, s in zip(lam[known], loss[known], names[known]):
        ax.annotate(s, (x, y), textcoords="offset points", xytext=(6, 2), fontsize=9)
    if (~known).any():
        x0 = (np.nanmax(lam) if known.any() else 0.0) + 2.0
        ax.scatter(
            np.full((~known).sum(), x0),
            loss[~known],
            marker="_",
            s=200,
            color="C3",
            label="λ unknown (estimate with λ̂)",
        )
        for y, s in zip(loss[~known], names[~known]):
            ax.annotate(s, (x0, y), textcoords="offset points", xytext=(10, -3), fontsize=7, color="C3")
        ax.axvline(x0 - 1.0, color="0.8", lw=0.8)
        ticks = [t for t in ax.get_xticks() if t <= x0 - 1.0 and t >= ax.get_xlim()[0]]
        ax.set_xticks([*ticks, x0], [*(f"{t:g}" for t in ticks), "λ unknown"])
        ax.set_xlim(right=x0 + 1.6)
    ax.set_xlabel("learning coefficient λ")
    ax.set_ylabel("L(w*)")
    ax.set_title(f"TMS critical points, r={catalogue.attrs.get('r')}, c={catalogue.attrs.get('c')}")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def occupancy_curves(
    occupancy: xr.DataArray,
    crossovers: list[dict] | None = None,
    ax=None,
    *,
    empirical: xr.DataArray | None = None,
) -> Figure:
    """Theoretical occupancy P(W_α | D_n) against n, one curve per phase, with crossovers n_crit
    marked as dashed lines.  ``empirical`` (dims n, phase; optional ``lower``/``upper`` coords) is
    drawn as points with intervals on the same axes."""
    fig, ax = _new(ax)
    n = occupancy.n.values
    for i, phase in enumerate(occupancy.phase.values):
        ax.plot(n, occupancy.sel(phase=phase).values, color=f"C{i}", label=f"{phase} (theory)")
        if empirical is not None and phase in empirical.phase.values:
            e = empirical.sel(phase=phase)
            yerr = None
            if "lower" in e.coords and "upper" in e.coords:
                yerr = np.vstack([e.values - e["lower"].values, e["upper"].values - e.values])
            ax.errorbar(
                e.n.values,
                e.values,
                yerr=yerr,
                fmt="o",
                color=f"C{i}",
                ms=4,
                capsize=2,
                label=f"{phase} (samples)",
            )
    for cr in crossovers or []:
        if math.isfinite(cr["n_crit"]):
            ax.axvline(cr["n_crit"], color="0.3", ls="--", lw=1)
            ax.annotate(
                f"{cr['from']}→{cr['to']}\nn≈{cr['n_crit']:.0f}",
                (cr["n_crit"], 0.5),
                textcoords="offset points",
                xytext=(4, 0),
                fontsize=8,
            )
    ax.set_xlabel("sample size n")
    ax.set_ylabel("posterior occupancy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Occupancy: softmax(−F_n), F_n = nL + λ log n + c")
    ax.legend(fontsize=8)
    return fig


def occupancy_conventions(curves: dict[str, xr.DataArray], ax=None) -> Figure:
    """Theoretical occupancy of the same phases in several free-energy conventions on one axes: one
    colour per phase, one line style per convention (solid first)."""
    fig, ax = _new(ax)
    styles = ["-", "--", ":", "-."]
    for j, (conv, occ) in enumerate(curves.items()):
        for i, phase in enumerate(occ.phase.values):
            ax.plot(
                occ.n.values,
                occ.sel(phase=phase).values,
                color=f"C{i}",
                ls=styles[j % 4],
                label=f"{phase} ({conv})",
            )
    ax.set_xlabel("sample size n")
    ax.set_ylabel("posterior occupancy (softmax over the phases shown)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Occupancy by convention: Laplace (every O(1) term) vs the paper's c_α")
    ax.legend(fontsize=7, ncol=2)
    return fig


def one_dim_free_energies(curves: xr.DataArray, n_crit: float | None = None, ax=None) -> Figure:
    """Local free energies F_n(W_α) against n (log axis) for a one-dimensional example, the
    global free energy (their minimum) in black, and the first-order transition marked."""
    fig, ax = _new(ax)
    n = curves.n.values
    for i, p in enumerate(curves.phase.values):
        lam = float(curves["lambda_"].sel(phase=p)) if "lambda_" in curves.coords else float("nan")
        ax.plot(n, curves.sel(phase=p).values, color=f"C{i}", label=f"F_n({p}), λ={lam:g}")
    ax.plot(n, curves.min("phase").values, color="k", lw=0.8, ls=":", label="min (global phase)")
    if n_crit is not None and math.isfinite(n_crit):
        ax.axvline(n_crit, color="0.3", ls="--", lw=1)
        ax.annotate(
            f"first-order transition\nn≈{n_crit:.1f}",
            (n_crit, ax.get_ylim()[1]),
            textcoords="offset points",
            xytext=(4, -24),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("local free energy F_n")
    ax.set_title(f"One-dimensional example: {curves.attrs.get('example', '')}")
    ax.legend(fontsize=8)
    return fig


def merge_free_energies(curves: xr.DataArray, ax=None) -> Figure:
    """F_n of the two windows of the merge example against θ (second-order transition at θ = 1)."""
    fig, ax = _new(ax)
    th = curves.theta.values
    for i, p in enumerate(curves.phase.values):
        ax.plot(th, curves.sel(phase=p).values, color=f"C{i}", label=f"F_n({p})")
    ax.axvline(1.0, color="0.3", ls="--", lw=1)
    ax.set_xlabel("θ")
    ax.set_ylabel(f"local free energy at n={curves.attrs.get('n', '')}")
    ax.set_title("Merge: minima meet at θ = 1 (K = w⁶, λ = 1/6)")
    ax.legend(fontsize=8)
    return fig


def polygon(
    W, b, ax=None, *, title: str | None = None, bias_tol: float = 0.0, vertex_norm: float = 0.5
) -> Figure:
    """Draw the columns W_j ∈ R² of a TMS sample as arrows from the origin and the polygon through
    the tips of columns with ‖W_j‖ ≥ ``vertex_norm`` (the classifier's threshold); columns with
    positive bias are red, others blue (r = 2 only)."""
    W = np.asarray(W, dtype=float)
    b = np.asarray(b, dtype=float)
    if W.ndim != 2 or W.shape[0] != 2 or b.shape != (W.shape[1],):
        raise ValueError(f"polygon needs W of shape (2, c) and b of shape (c,), got {W.shape} and {b.shape}")
    fig, ax = _new(ax, figsize=(3.2, 3.2))
    for j in range(W.shape[1]):
        color = "C3" if b[j] > bias_tol else "C0"
        ax.annotate("", xy=W[:, j], xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color, lw=1.5))
        ax.text(*(W[:, j] * 1.08), str(j), fontsize=7, ha="center", va="center")
    norms = np.linalg.norm(W, axis=0)
    big = W[:, norms >= vertex_norm]
    if big.shape[1] >= 3:
        order = np.argsort(np.arctan2(big[1], big[0]))
        ring = big[:, np.r_[order, order[:1]]]
        ax.plot(ring[0], ring[1], color="0.6", lw=0.8)
    lim = max(1.0, 1.2 * float(norms.max()))
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def empirical_occupancy(
    occ: xr.Dataset,
    theory: xr.DataArray | None = None,
    crossovers: list[dict] | None = None,
    *,
    min_share: float = 0.02,
    ax=None,
) -> Figure:
    """Empirical shares (points with bootstrap intervals, per-seed shares as faint dots) for every
    phase that reaches ``min_share`` somewhere, theoretical curves (lines) for the phases with known
    λ, and crossovers (theory: dashed; empirical: dotted, with the interval shaded).  With a theory,
    the shares are first put on its normalisation (:func:`tms_bayes.analysis.occupancy.on_phases`:
    renormalised over the theory's phases) and the mass outside them is drawn as "other"."""
    fig, ax = _new(ax, figsize=(7.5, 4.6))
    mixed_n = occ["mixed"].values if "mixed" in occ else None
    if theory is not None:
        from .occupancy import on_phases

        occ = on_phases(occ, list(map(str, theory.phase.values)))
    phases = [p for p in occ.phase.values if float(occ.share.sel(phase=p).max()) >= min_share]
    theory_phases = list(theory.phase.values) if theory is not None else []
    colors = {p: f"C{i}" for i, p in enumerate(dict.fromkeys(theory_phases + phases))}
    colors["other"] = "0.5"
    n = occ.n.values
    mixed = np.asarray(mixed_n, dtype=bool) if mixed_n is not None else np.ones(len(n), dtype=bool)
    for p in phases:
        s = occ.share.sel(phase=p).values
        yerr = np.vstack([s - occ.lower.sel(phase=p).values, occ.upper.sel(phase=p).values - s])
        ax.errorbar(
            n[mixed],
            s[mixed],
            yerr=yerr[:, mixed],
            fmt="o",
            ms=4,
            capsize=2,
            color=colors[p],
            label=f"{p} (chains)",
        )
        if (~mixed).any():  # unmixed n: hollow, not drawn as equals of the mixed ones
            ax.errorbar(
                n[~mixed],
                s[~mixed],
                yerr=yerr[:, ~mixed],
                fmt="o",
                ms=4,
                mfc="none",
                capsize=2,
                color=colors[p],
                alpha=0.6,
                label=f"{p} (chains, unmixed n)" if p == phases[0] else None,
            )
        for seed in occ.seed.values:
            ax.plot(n, occ.share_seed.sel(phase=p, seed=seed).values, ".", color=colors[p], alpha=0.25, ms=3)
    if theory is not None:
        for p in theory_phases:
            ax.plot(
                theory.n.values,
                theory.sel(phase=p).values,
                "-",
                color=colors[p],
                lw=1.5,
                label=f"{p} (theory)",
            )
    for k, cr in enumerate(crossovers or []):
        if not math.isfinite(cr.get("n_crit", math.nan)):
            continue
        style = {"theory": "--", "theory (Laplace)": "-."}.get(cr.get("kind"), ":")
        ax.axvline(cr["n_crit"], color="0.3", ls=style, lw=1)
        if math.isfinite(cr.get("lower", math.nan)):
            ax.axvspan(cr["lower"], cr["upper"], color="0.5", alpha=0.12)
        ax.annotate(
            f"{cr['from']}→{cr['to']} ({cr.get('kind', '')})\nn≈{cr['n_crit']:.0f}",
            (cr["n_crit"], 0.92 - 0.09 * k),
            textcoords="offset points",
            xytext=(4, 0),
            fontsize=7,
        )
    ax.set_xlabel("sample size n")
    ax.set_ylabel("occupancy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        "Phase occupancy: shares (points) vs softmax(−F_n) (lines)"
        + (", renormalised over the theory's phases" if theory is not None else "")
    )
    ax.legend(fontsize=7, ncol=2, loc="center right")
    return fig


def embedding(
    emb: np.ndarray, labels, clusters, *, ari: float | None = None, label_title: str = "exact k-gon label"
) -> Figure:
    """t-SNE embedding coloured by exact label (left) and by HDBSCAN cluster (right)."""
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, lab, title in [
        (axes[0], np.asarray(labels).astype(str), label_title),
        (axes[1], np.asarray(clusters).astype(str), "HDBSCAN cluster (−1 = noise)"),
    ]:
        for i, u in enumerate(sorted(set(lab), key=lambda s: (s in ("unclassified", "neither", "-1"), s))):
            m = lab == u
            color = "0.75" if u in ("unclassified", "neither", "-1") else f"C{i % 10}"
            ax.scatter(emb[m, 0], emb[m, 1], s=4, color=color, label=f"{u} ({m.sum()})")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, markerscale=3, loc="best")
    if ari is not None:
        fig.suptitle(f"t-SNE of symmetry-normalised samples; adjusted Rand index = {ari:.3f}")
    return fig


def gallery(samples: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """One representative polygon per phase: ``{phase: (W, b)}``."""
    k = max(len(samples), 1)
    cols = min(k, 5)
    rows = math.ceil(k / cols)
    fig = Figure(figsize=(2.6 * cols, 2.7 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (phase, (W, b)) in zip(axes, samples.items()):
        polygon(W, b, ax=ax, title=phase)
    for ax in axes[len(samples) :]:
        ax.set_axis_off()
    return fig


def share_vs_loss(
    occ: xr.Dataset, catalogue: xr.Dataset | None = None, *, min_share: float = 0.02, ax=None
) -> Figure:
    """Mean L_n of each phase's draws against its share, one point per n (size grows with n), with
    the catalogue's L(w*) as horizontal ticks."""
    fig, ax = _new(ax)
    n = occ.n.values
    for i, p in enumerate(occ.phase.values):
        if p == "unclassified" or float(occ.share.sel(phase=p).max()) < min_share:
            continue
        ax.scatter(
            occ.share.sel(phase=p).values,
            occ.mean_L_n.sel(phase=p).values,
            s=10 + 40 * (n - n.min()) / max(np.ptp(n), 1),
            color=f"C{i % 10}",
            label=p,
        )
        if catalogue is not None and p in catalogue.phase.values:
            ax.axhline(float(catalogue.loss.sel(phase=p)), color=f"C{i % 10}", lw=0.8, ls="--")
    ax.set_xlabel("share of draws")
    ax.set_ylabel("mean L_n of the phase's draws")
    ax.set_title("Phase share against loss (marker size grows with n; dashed: L(w*))")
    ax.legend(fontsize=8)
    return fig


def llc_calibration(cal: xr.Dataset) -> Figure:
    """λ̂ ± 2 SE against γ (one line per step size ε) and, for SGLD, against ε (one line per γ), with
    the known λ as a dashed line where given; estimates that raised a warning are drawn hollow.
    ``cal`` from :func:`tms_bayes.inference.llc.calibrate_llc`."""
    steps = cal.step_size.values
    two = np.isfinite(steps).any() and len(steps) > 1
    fig = Figure(figsize=(11.0 if two else 6.0, 4.0), layout="constrained")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    ref = cal.attrs.get("reference_lambda", float("nan"))

    def draw(ax, xdim, line_dim):
        for i, v in enumerate(cal[line_dim].values):
            sub = cal.isel({line_dim: i})
            x, y, e = sub[xdim].values, sub.llc_mean.values, 2 * sub.llc_se.values
            warn = sub.n_warnings.values > 0
            label = f"{line_dim} = {v:g}" if np.isfinite(v) else None
            line = ax.errorbar(
                x, y, yerr=e, marker="o", capsize=3, label=label, mfc="none" if warn.all() else None
            )
            if warn.any() and not warn.all():
                ax.scatter(
                    x[warn], y[warn], s=80, facecolors="white", edgecolors=line[0].get_color(), zorder=4
                )
        bad = ~np.isfinite(cal.llc_mean.transpose(line_dim, xdim).values)
        if bad.any():  # diverged runs: mark them on the x axis rather than dropping them silently
            xs = np.broadcast_to(cal[xdim].values, bad.shape)[bad]
            ax.scatter(
                xs,
                np.full(
                    xs.shape,
                    np.nanmin(cal.llc_mean.values) if np.isfinite(cal.llc_mean.values).any() else 0.0,
                ),
                marker="x",
                color="C3",
                s=60,
                zorder=5,
                label="diverged",
            )
        if math.isfinite(ref):
            ax.axhline(ref, color="k", ls="--", lw=1, label=f"known λ = {ref:g}")
        ax.set_xscale("log")
        ax.set_xlabel("γ (localisation)" if xdim == "gamma" else "ε (SGLD step size)")
        ax.set_ylabel("λ̂")
        ax.legend(fontsize=8)

    draw(axes[0], "gamma", "step_size")
    axes[0].set_title(
        f"λ̂ against γ ({cal.attrs.get('sampler', '')}, "
        f"nβ = {cal.attrs.get('nbeta', float('nan')):.4g}); hollow: warned"
    )
    if two:
        draw(axes[1], "step_size", "gamma")
        axes[1].set_title("λ̂ against ε")
    return fig


def dynamics_trajectory(ds: xr.Dataset, run: int, plateaus=None, *, max_snapshots: int = 4) -> Figure:
    """One SGD run: L (closed form) and L_n against step, and λ̂ ± SE against step, on log axes, with
    plateaus shaded and the polygon (W columns, bias-coloured) drawn at the end of each plateau.
    ``plateaus``: :func:`tms_bayes.analysis.dynamics.match_plateaus` rows (any runs)."""
    sel = ds.sel(run=run)
    t = np.maximum(sel.step.values.astype(float), 1.0)
    rows = [] if plateaus is None else [r for _, r in plateaus[plateaus.run == run].iterrows()]
    snaps = [r for r in rows if r.get("matched", True)][-max_snapshots:]
    fig = Figure(figsize=(10.0, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, max(len(snaps), 1), height_ratios=[2.2, 1.0])
    ax = fig.add_subplot(grid[0, :])
    ax.plot(t, sel.loss.values, color="C0", label="L (closed form)")
    ax.plot(t, sel.loss_n.values, color="C0", alpha=0.35, label="L_n (training set)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("loss", color="C0")
    ax2 = ax.twinx()
    lam, se = sel.llc.values, sel.llc_se.values
    ax2.errorbar(t, lam, yerr=2 * se, color="C3", marker=".", lw=1, capsize=2, label="λ̂ (SGLD) ± 2 SE")
    ax2.set_ylabel("λ̂", color="C3")
    for r in rows:
        ax.axvspan(
            max(r.step_first, 1), r.step_last, color="0.85" if r.get("matched", True) else "0.95", zorder=0
        )
        ax.annotate(
            r.phase if r.get("matched", True) else "?",
            (math.sqrt(max(r.step_first, 1) * r.step_last), r.loss),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=9,
        )
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower left")
    ax.set_title(f"run {run}: loss falls and λ̂ rises through plateaus (shaded)")
    for i, r in enumerate(snaps):
        a = fig.add_subplot(grid[1, i])
        polygon(
            sel.W.values[int(r["last"])],
            sel.b.values[int(r["last"])],
            ax=a,
            title=f"{r.phase} at step {int(r.step_last)}",
        )
    return fig


def loss_complexity(catalogue: xr.Dataset, transitions=None, plateaus=None, ax=None) -> Figure:
    """The loss–complexity diagram: L against λ for catalogue points (theory λ filled; λ̂ from the
    trajectories' plateaus, hollow with its error bar, where theory is silent), observed transitions
    as arrows with width by frequency.  ``transitions``:
    :func:`~tms_bayes.analysis.dynamics.transition_table`."""
    fig, ax = _new(ax, figsize=(7.0, 5.0))
    lam = {p: float(v) for p, v in zip(catalogue.phase.values, catalogue.lambda_.values)}
    loss = {p: float(v) for p, v in zip(catalogue.phase.values, catalogue.loss.values)}
    err: dict[str, float] = {}  # phases whose λ is a trajectory estimate: its standard error
    if plateaus is not None and len(plateaus):
        for p, g in plateaus[plateaus.matched].groupby("phase"):
            if not math.isfinite(lam.get(p, float("nan"))) and g.llc.notna().any():
                lam[p] = float(g.llc.mean())
                err[p] = (
                    float(g.llc.std(ddof=1) / math.sqrt(len(g))) if len(g) > 1 else float(g.llc_se.iloc[0])
                )
    shown = [p for p in lam if math.isfinite(lam[p])]
    for p in shown:
        est = p in err
        ax.errorbar(
            lam[p], loss[p], xerr=err.get(p), fmt="o", mfc="white" if est else "C0", color="C0", capsize=3
        )
        ax.annotate(p, (lam[p], loss[p]), textcoords="offset points", xytext=(6, 2), fontsize=9)
    if transitions is not None and len(transitions):
        top = transitions["count"].max()
        for _, t in transitions.iterrows():
            a, b = t["from"], t["to"]
            if a in shown and b in shown:
                ax.annotate(
                    "",
                    xy=(lam[b], loss[b]),
                    xytext=(lam[a], loss[a]),
                    arrowprops={"arrowstyle": "->", "color": "C3", "lw": 0.8 + 3.2 * t["count"] / top},
                )
                ax.annotate(
                    str(t["count"]), ((lam[a] + lam[b]) / 2, (loss[a] + loss[b]) / 2), color="C3", fontsize=8
                )
    ax.set_xlabel("λ (filled: theory; hollow: λ̂ from the trajectories ± SE)")
    ax.set_ylabel("L at the critical point")
    ax.set_title("loss–complexity diagram: observed SGD transitions (arrows, width ∝ count)")
    return fig


_PARAM_SYMBOL = {"theta": "θ", "vartheta": "ϑ"}


def phase_fractions(frac: xr.Dataset, critical: dict | None = None, ax=None) -> Figure:
    """Phase fractions against the truth parameter: pooled shares with bootstrap intervals over trials,
    per-trial shares as faint dots, and the critical value with its interval shaded."""
    fig, ax = _new(ax, figsize=(7.2, 4.4))
    x = frac.value.values
    sym = _PARAM_SYMBOL.get(frac.attrs.get("parameter"), "value")
    for i, p in enumerate(frac.phase.values):
        color = "0.5" if p == "neither" else f"C{i}"
        s = frac.share.sel(phase=p).values
        yerr = np.vstack([s - frac.lower.sel(phase=p).values, frac.upper.sel(phase=p).values - s])
        ax.errorbar(
            x, s, yerr=np.nan_to_num(yerr), fmt="o-", ms=4, lw=1, capsize=2, color=color, label=str(p)
        )
        for t in frac.trial.values:
            ax.plot(x, frac.share_trial.sel(phase=p, trial=t).values, ".", color=color, alpha=0.2, ms=3)
    if critical is not None and math.isfinite(critical.get("critical", math.nan)):
        ax.axvline(critical["critical"], color="k", ls="--", lw=1)
        if math.isfinite(critical.get("lower", math.nan)):
            ax.axvspan(critical["lower"], critical["upper"], color="0.5", alpha=0.15)
        ax.annotate(
            f"{sym}_c ≈ {critical['critical']:.3f}",
            (critical["critical"], 0.95),
            textcoords="offset points",
            xytext=(4, 0),
            fontsize=8,
        )
    ax.set_xlabel(sym)
    ax.set_ylabel("fraction of samples")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"{frac.attrs.get('experiment', '').upper()}: phase fractions "
        f"(ε = {frac.attrs.get('epsilon', float('nan')):g}, n = {frac.attrs.get('n', '?')})"
    )
    ax.legend(fontsize=8)
    return fig


def phase_min_loss(frac: xr.Dataset, ax=None) -> Figure:
    """Minimum (and mean) L_n within each phase against the truth parameter: the accuracy side of
    the accuracy–complexity trade-off."""
    fig, ax = _new(ax)
    x = frac.value.values
    for i, p in enumerate(frac.phase.values):
        color = "0.5" if p == "neither" else f"C{i}"
        ax.plot(x, frac.min_L_n.sel(phase=p).values, "o-", ms=4, color=color, label=f"{p}: min L_n")
        ax.plot(x, frac.mean_L_n.sel(phase=p).values, ":", color=color, label=f"{p}: mean L_n")
    ax.set_xlabel(_PARAM_SYMBOL.get(frac.attrs.get("parameter"), "value"))
    ax.set_ylabel("L_n = mean (y − f)²")
    ax.set_title("Accuracy within each phase")
    ax.legend(fontsize=7)
    return fig


def effective_weights_grid(
    labels: xr.Dataset, values=None, *, max_points: int = 4000, ncols: int = 4, seed: int = 0
) -> Figure:
    """Pooled effective weights ŵ_a (all nodes, kept trials) per truth value: a scatter coloured by
    phase over a 2-D histogram density, one panel per value, with the true effective weights as
    crosses when the labels carry them."""
    vals = labels.value.values if values is None else np.asarray(values, dtype=float)
    rows = math.ceil(len(vals) / ncols)
    fig = Figure(figsize=(3.0 * min(ncols, len(vals)), 3.0 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, min(ncols, len(vals)), squeeze=False)).ravel()
    rng = np.random.default_rng(seed)
    phases = list(dict.fromkeys(np.unique(labels.label.values)))
    colors = {p: ("0.6" if p == "neither" else f"C{i}") for i, p in enumerate(sorted(phases))}
    for ax, v in zip(axes, vals):
        sel = labels.sel(value=v, method="nearest")
        kept = sel.kept.values
        eff = sel.effective_w.values[kept]  # (trial, draw, node, 2)
        lab = np.broadcast_to(sel.label.values[kept][..., None], eff.shape[:-1])
        pts, pl = eff.reshape(-1, 2), lab.reshape(-1)
        ax.hist2d(pts[:, 0], pts[:, 1], bins=60, range=[[-2.5, 2.5], [-2.5, 2.5]], cmap="Greys", cmin=1)
        take = rng.choice(len(pts), size=min(max_points, len(pts)), replace=False)
        for p in sorted(set(pl[take])):
            m = pl[take] == p
            ax.scatter(pts[take][m, 0], pts[take][m, 1], s=1, alpha=0.3, color=colors[p], label=p)
        ax.set_title(
            f"{_PARAM_SYMBOL.get(labels.attrs.get('parameter'), 'value')} = {v:.3g} ({kept.sum()} trials)",
            fontsize=9,
        )
        ax.set_xlim(-2.5, 2.5)
        ax.set_ylim(-2.5, 2.5)
        ax.set_aspect("equal")
    for ax in axes[len(vals) :]:
        ax.axis("off")
    handles = [axes[0].scatter([], [], s=12, color=colors[p], label=p) for p in sorted(phases)]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(phases), fontsize=8)
    fig.suptitle("Effective weights ŵ = |q| w, all nodes pooled")
    return fig


def raw_vs_effective(w, q, labels=None, *, title: str = "", max_points: int = 4000, seed: int = 0) -> Figure:
    """Raw first-layer weights w_a (left) beside effective weights ŵ_a = |q_a| w_a (right) of the same
    samples, w (..., d, 2), q (..., d): the scaling symmetry smears raw weights along rays."""
    w = np.asarray(w, dtype=float).reshape(-1, np.shape(w)[-2], 2)
    q = np.asarray(q, dtype=float).reshape(len(w), -1)
    from .phases import effective_weights

    eff = effective_weights(w, q)
    lab = (
        np.broadcast_to(np.asarray(labels).reshape(-1)[:, None], q.shape).reshape(-1)
        if labels is not None
        else np.full(q.size, "")
    )
    rng = np.random.default_rng(seed)
    take = rng.choice(q.size, size=min(max_points, q.size), replace=False)
    fig = Figure(figsize=(9, 4.4), layout="constrained")
    for ax, pts, name in zip(
        fig.subplots(1, 2),
        (w.reshape(-1, 2), eff.reshape(-1, 2)),
        ("raw weights w_a", "effective weights ŵ_a = |q_a| w_a"),
    ):
        for i, p in enumerate(sorted(set(lab[take]))):
            m = lab[take] == p
            ax.scatter(
                pts[take][m, 0],
                pts[take][m, 1],
                s=2,
                alpha=0.4,
                color="0.6" if p == "neither" else f"C{i}",
                label=p or None,
            )
        ax.set_title(name)
        ax.set_aspect("equal")
        lim = float(np.quantile(np.abs(pts[take]), 0.995)) * 1.1 + 0.1
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        if labels is not None:
            ax.legend(fontsize=7, markerscale=4)
    fig.suptitle(title)
    return fig


def occupancy_estimators(
    smc_occ: xr.Dataset,
    chains_occ: xr.Dataset | None = None,
    theory: xr.DataArray | None = None,
    crossovers: list[dict] | None = None,
    *,
    phases=("5", "5+", "6"),
    ax=None,
) -> Figure:
    """Three estimators of phase occupancy on one figure: posterior mass from SMC (filled markers,
    bootstrap interval over seeds), chain shares from NUTS (hollow markers) and softmax(−F_n) from
    theory (lines); crossovers as vertical lines with their intervals.  Both measured estimators are
    renormalised over ``phases``, the theory's normalisation; the SMC mass outside them is "other"."""
    from .occupancy import on_phases

    fig, ax = _new(ax, figsize=(7.8, 4.8))
    smc_occ = on_phases(smc_occ, phases)
    chains_occ = on_phases(chains_occ, phases) if chains_occ is not None else None
    o = smc_occ.share.sel(phase="other").values
    ax.plot(smc_occ.n.values, o, "x", color="0.5", ms=4, label="other (SMC mass outside these phases)")
    for i, p in enumerate(phases):
        color = f"C{i}"
        if p in smc_occ.phase.values:
            s = smc_occ.share.sel(phase=p).values
            yerr = np.nan_to_num(
                np.vstack([s - smc_occ.lower.sel(phase=p).values, smc_occ.upper.sel(phase=p).values - s])
            )
            ax.errorbar(
                smc_occ.n.values,
                s,
                yerr=yerr,
                fmt="o",
                ms=5,
                capsize=2,
                color=color,
                label=f"{p}: SMC posterior mass",
            )
        if chains_occ is not None and p in chains_occ.phase.values:
            ax.plot(
                chains_occ.n.values,
                chains_occ.share.sel(phase=p).values,
                "s",
                ms=5,
                mfc="none",
                color=color,
                label=f"{p}: NUTS chain share",
            )
        if theory is not None and p in theory.phase.values:
            ax.plot(
                theory.n.values, theory.sel(phase=p).values, "-", color=color, lw=1.2, label=f"{p}: theory"
            )
    styles = {"theory": "--", "smc": "-", "chains": ":"}
    for k, cr in enumerate(crossovers or []):
        if not math.isfinite(cr.get("n_crit", math.nan)):
            continue
        ax.axvline(cr["n_crit"], color="0.25", ls=styles.get(cr.get("kind"), "-."), lw=1)
        if math.isfinite(cr.get("lower", math.nan)) and math.isfinite(cr.get("upper", math.nan)):
            ax.axvspan(cr["lower"], cr["upper"], color="0.5", alpha=0.08)
        ax.annotate(
            f"{cr['from']}→{cr['to']} {cr.get('kind', '')}: {cr['n_crit']:.0f}",
            (cr["n_crit"], 0.97 - 0.07 * k),
            textcoords="offset points",
            xytext=(3, 0),
            fontsize=7,
        )
    ax.set_xlabel("sample size n")
    ax.set_ylabel("P(phase | D_n)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Occupancy over the phases shown: SMC mass vs NUTS chain shares vs theory")
    ax.legend(fontsize=6.5, ncol=3, loc="center right")
    return fig


def log_odds(
    agreement: xr.Dataset, curves: dict[str, tuple] | None = None, *, title: str | None = None, ax=None
) -> Figure:
    """ΔF = F₅ − F₆ against n (log axis): SMC (mean over datasets, ± 2 SE, filled), NUTS chain
    shares (hollow squares where every chain changed label; faint crosses at unmixed n), the
    per-dataset Laplace theory (mean, ± 2 SE band) from
    :func:`tms_bayes.analysis.free_energy.agreement`, the population curves stored with it
    (``laplace_dF``: Laplace expansion; ``paper_dF``: the paper's formula) and any further
    ``curves`` {label: (n, ΔF)}.  ΔF > 0: the 6-gon holds more mass.  SMC points that are not
    comparable (< 20 effective particles in a phase) are grey; infinite log-odds (a phase with no
    particle or draw at all) are drawn as triangles at the edge of the plot."""
    fig, ax = _new(ax, figsize=(6.8, 4.4))
    n = agreement.n.values.astype(float)
    th, th_se = agreement.theory_dF.values, np.nan_to_num(agreement.theory_se.values)
    curves = dict(curves or {})
    for var, label in (
        ("laplace_dF", "Laplace, population (flat region)"),
        ("paper_dF", "paper's formula (c = ½‖w*‖²)"),
    ):
        if var in agreement:
            curves.setdefault(label, (n, agreement[var].values))
    finite = [
        v[np.isfinite(v)]
        for v in (th, agreement.smc_dF.values, agreement.get("chains_dF", xr.DataArray([])).values)
    ]
    finite = np.concatenate([f for f in finite if f.size]) if any(f.size for f in finite) else np.array([0.0])
    lo, hi = min(float(finite.min()), -1.0) - 1.0, max(float(finite.max()), 1.0) + 1.0

    def edge(y):
        return np.where(np.isposinf(y), hi, np.where(np.isneginf(y), lo, y)), ~np.isfinite(y) & ~np.isnan(y)

    ax.fill_between(n, th - 2 * th_se, th + 2 * th_se, color="C2", alpha=0.18, lw=0)
    ax.plot(n, th, "-", color="C2", lw=1.4, label="Laplace, per dataset, classifier's region (mean ± 2 SE)")
    ok = agreement.comparable.values.astype(bool)
    y, off = edge(agreement.smc_dF.values)
    se = np.nan_to_num(agreement.smc_se.values)
    for mask, color, label in (
        (ok, "C0", "SMC posterior mass (mean ± 2 SE)"),
        (~ok & ~off, "0.6", "SMC, not comparable (< 20 eff. particles)"),
    ):
        if mask.any():
            ax.errorbar(
                n[mask], y[mask], yerr=2 * se[mask], fmt="o", ms=5, capsize=2, color=color, label=label
            )
    if off.any():
        ax.plot(n[off], y[off], "^", color="0.6", ms=6, label="SMC: a phase holds no particle (ΔF = ±∞)")
    if "chains_dF" in agreement:
        yc, offc = edge(agreement.chains_dF.values)
        unmixed = (
            (agreement.chains_verdict.values == "unmixed")
            if "chains_verdict" in agreement
            else np.zeros(len(n), bool)
        )
        for mask, style, label in (
            (~unmixed, dict(mfc="none", color="C1"), "NUTS chain shares (mixed n)"),
            (unmixed, dict(color="C1", alpha=0.45), "NUTS chain shares, UNMIXED n (not an estimate)"),
        ):
            if mask.any():
                ax.plot(
                    n[mask & ~offc],
                    yc[mask & ~offc],
                    "x" if style.get("alpha") else "s",
                    ms=6,
                    ls="none",
                    label=label,
                    **style,
                )
                ax.plot(n[mask & offc], yc[mask & offc], "^", ms=6, ls="none", **style)
    for k, (label, (cn, cdf)) in enumerate(curves.items()):
        ax.plot(cn, cdf, ("--", "-.", ":")[k % 3], color="0.3", lw=1.1, label=label)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_ylim(lo - 0.3, hi + 0.3)
    ax.set_xlabel("sample size n")
    ax.set_ylabel("ΔF = F₅ − F₆  (> 0: 6-gon ahead)")
    ax.set_title(title or "Log-odds of the 6-gon over the 5-gon")
    ax.legend(fontsize=6.5)
    return fig


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (without a warning) where a row is all NaN."""
    ok = np.isfinite(a)
    return np.where(
        ok.any(axis=-1), np.where(ok, a, 0.0).sum(axis=-1) / np.maximum(ok.sum(axis=-1), 1), np.nan
    )


def phase_free_energy(
    F_phase: xr.DataArray,
    theory: xr.DataArray | None = None,
    growth: xr.Dataset | None = None,
    *,
    phases=("5", "5+", "6"),
) -> Figure:
    """Left: measured F_n(W_α) (mean over seeds, seeds as dots) against the theory layer's
    n_eff L_α + λ_α log n_eff.  Right: G_n = F_n(W_α) − n_eff L_n(ŵ_α) against log n with the
    fitted slope λ̂_α and the theory slope λ_α."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    n = F_phase.n.values
    for i, p in enumerate(phases):
        if p not in F_phase.phase.values:
            continue
        color = f"C{i}"
        F = F_phase.sel(phase=p).values
        ax1.plot(n, _nanmean_rows(F), "o", color=color, label=f"{p}: SMC")
        ax1.plot(np.repeat(n, F.shape[1]), F.ravel(), ".", color=color, alpha=0.3, ms=3)
        if theory is not None and p in theory.phase.values:
            ax1.plot(
                theory.n.values,
                theory.sel(phase=p).values,
                "-",
                color=color,
                lw=1,
                label=f"{p}: n L + λ log n",
            )
        if growth is not None and p in growth.phase.values:
            G = growth.G.sel(phase=p).values
            ax2.plot(np.log(n), _nanmean_rows(G), "o", color=color)
            ax2.plot(np.repeat(np.log(n), G.shape[1]), G.ravel(), ".", color=color, alpha=0.3, ms=3)
            lam = float(growth["lambda"].sel(phase=p))
            if math.isfinite(lam):
                x = np.log(n)
                c0 = float(_nanmean_rows(_nanmean_rows(G) - lam * x))
                ax2.plot(
                    x,
                    c0 + lam * x,
                    "-",
                    color=color,
                    lw=1,
                    label=f"{p}: λ̂ = {lam:.2f} ± {float(growth.se.sel(phase=p)):.2f}",
                )
    ax1.set_xlabel("n")
    ax1.set_ylabel("F_n(W_α)")
    ax1.set_title("Free energy per phase")
    ax2.set_xlabel("log n")
    ax2.set_ylabel("F_n(W_α) − n_eff L_n(ŵ_α)")
    ax2.set_title("Complexity part: slope = λ_α")
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig
