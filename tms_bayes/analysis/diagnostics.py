"""MCMC diagnostics on quantities that the model's symmetries leave unchanged.

The TMS posterior is invariant under O(r) acting on W and under joint permutations of the columns
of W and the entries of b; the ReLU models under node permutations and the scaling
(w_a, b_a, q_a) → (α w_a, α b_a, q_a / α).  Two chains in the same phase can therefore sit at
different raw W, and R̂ on raw W reports non-convergence that is only a symmetry.  tms-bayes reports
R̂, bulk/tail ESS and MCSE (ArviZ) on invariant quantities instead:

- ``L_n``: the empirical loss;
- ``col_norm``: the column norms ‖W_j‖ sorted in decreasing order (ReLU: the effective-weight norms
  |q_a|·‖w_a‖, sorted);
- ``bias``: the biases sorted in increasing order (ReLU: |q_a|·b_a, sorted);

plus sampler health: divergences, the share of transitions that hit the maximum tree depth, and
E-BFMI per chain.  Chains that settle in different phases still give R̂ ≫ 1 on these invariants:
that is the posterior's multimodality (the phases differ in loss and geometry), which the
occupancy analysis measures, not a failure of the invariants.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from ..store.rundir import data_seed_of

__all__ = ["invariant_quantities", "summarize_run", "sweep_diagnostics", "format_table"]


def invariant_quantities(idata: az.InferenceData) -> xr.Dataset:
    """Symmetry-invariant quantities of every draw (dims chain, draw[, rank])."""
    post = idata.posterior
    if "W" in post:
        norms = np.sqrt((post["W"].values ** 2).sum(axis=2))  # (chain, draw, col)
        biases = post["b"].values
    elif "w" in post and "q" in post:
        from .phases import effective_weights

        norms = np.linalg.norm(effective_weights(post["w"].values, post["q"].values), axis=-1)
        biases = np.abs(post["q"].values) * post["b"].values
    else:
        raise ValueError("the run's posterior has neither TMS (W, b) nor ReLU (w, b, q) parameters")
    return xr.Dataset(
        {
            "L_n": (("chain", "draw"), post["L_n"].values),
            "col_norm": (("chain", "draw", "rank"), -np.sort(-norms, axis=-1)),
            "bias": (("chain", "draw", "rank"), np.sort(biases, axis=-1)),
        },
        coords={"chain": post.chain.values, "draw": post.draw.values},
    )


def summarize_run(idata: az.InferenceData) -> pd.DataFrame:
    """One row per invariant quantity: mean, sd, R̂, ESS bulk/tail, MCSE, and the run's sampler
    health (divergences, max-tree-depth share, minimum E-BFMI), with n and the dataset seed."""
    inv = invariant_quantities(idata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summ = az.summary(inv, kind="all", round_to="none")
        ss = idata.sample_stats
        bfmi = az.bfmi(idata) if "energy" in ss and idata.posterior.sizes["draw"] > 1 else np.array([np.nan])
    attrs = idata.posterior.attrs
    summ = summ.rename_axis("quantity").reset_index()
    summ.insert(0, "data_seed", data_seed_of(attrs))
    summ.insert(0, "n", attrs.get("n"))
    summ["divergences"] = int(ss["diverging"].values.sum())
    summ["max_treedepth_share"] = (
        float(np.mean(ss["reached_max_treedepth"].values)) if "reached_max_treedepth" in ss else np.nan
    )
    summ["mean_tree_depth"] = float(np.mean(ss["tree_depth"].values)) if "tree_depth" in ss else np.nan
    summ["min_ebfmi"] = float(np.min(bfmi))
    return summ


def sweep_diagnostics(sweep) -> pd.DataFrame:
    """:func:`summarize_run` for every finished job of a :class:`~tms_bayes.inference.sweep.Sweep`,
    with its seed index ``seed`` (as in every other table of a sweep), sorted by (n, seed)."""
    rows = []
    for n, s in sweep.finished():
        row = summarize_run(sweep.load(n, s))
        row.insert(1, "seed", s)
        rows.append(row)
    return (
        pd.concat(rows, ignore_index=True).sort_values(["n", "seed"], kind="stable", ignore_index=True)
        if rows
        else pd.DataFrame()
    )


def format_table(table: pd.DataFrame) -> str:
    """A per-n summary for the terminal: L_n's R̂ and ESS (worst over seeds), sampler health."""
    if table.empty:
        return "(no finished jobs)"
    lines = [
        f"{'n':>6}{'seeds':>6}{'mean L_n':>11}{'max R̂(L_n)':>12}{'min ESS(L_n)':>13}"
        f"{'max R̂ inv':>11}{'div':>6}{'maxdepth%':>10}{'min E-BFMI':>11}"
    ]
    for n, g in table.groupby("n"):
        L = g[g.quantity == "L_n"]
        lines.append(
            f"{n:>6}{g.seed.nunique():>6}{L['mean'].mean():>11.5f}{L['r_hat'].max():>12.3f}"
            f"{L['ess_bulk'].min():>13.0f}"
            f"{g['r_hat'].max():>11.3f}{int(L['divergences'].sum()):>6}"
            f"{100 * L['max_treedepth_share'].mean():>10.1f}{L['min_ebfmi'].min():>11.2f}"
        )
    return "\n".join(lines)
