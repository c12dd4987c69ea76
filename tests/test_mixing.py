"""Chain shares treated as MCMC: transitions, indicator R̂/ESS, mixed n, hierarchical intervals."""

import numpy as np
import xarray as xr

from tms_bayes.analysis.mixing import (
    hierarchical_bootstrap,
    indicator_diagnostics,
    label_transitions,
    mixing_summary,
)


def _labels(arr):
    arr = np.asarray(arr, dtype=object)
    N, S, C, D = arr.shape
    return xr.Dataset(
        {"label": (("n", "seed", "chain", "draw"), arr.astype(str))},
        coords={
            "n": np.arange(N) * 100 + 100,
            "seed": np.arange(S),
            "chain": np.arange(C),
            "draw": np.arange(D),
        },
    )


def test_transitions_skip_unclassified_draws():
    u = "unclassified"
    lab = _labels([[[["5", "5", u, "5", "6", u, "6", "5+"], [u, u, "6", "6", "6", "6", "6", "6"]]]])
    tr = label_transitions(lab)
    assert tr.values.tolist() == [[[2, 0]]]  # 5 → 6 → 5+; the unclassified gaps do not count
    mix = mixing_summary(lab, ["5", "5+", "6"])
    assert not bool(mix.mixed.values[0]) and int(mix.min_transitions.values[0]) == 0


def test_constant_indicator_is_not_assessable_and_stuck_chains_have_large_rhat():
    rng = np.random.default_rng(0)
    stuck = np.array([["6"] * 200, ["5"] * 200, ["6"] * 200, ["5"] * 200])  # chains never cross
    mixed = np.where(rng.random((4, 200)) < 0.5, "5", "6")  # chains cross all the time
    lab = _labels([[stuck], [mixed]])
    d = indicator_diagnostics(lab, ["5", "6", "5+"])
    assert d.rhat.sel(phase="6").values[0] > 1.5  # stuck chains: R̂ flags them
    assert abs(d.rhat.sel(phase="6").values[1] - 1.0) < 0.02
    assert not d.assessable.sel(phase="5+").values.any() and np.isnan(d.rhat.sel(phase="5+").values).all()
    assert d.ess_bulk.sel(phase="6").values[1] > 400  # 800 nearly independent draws
    assert mixing_summary(lab, ["5", "6"]).mixed.values.tolist() == [False, True]


def test_hierarchical_interval_covers_the_spread_between_datasets():
    """Three datasets whose chains agree with each other but not with the other datasets: the old
    chains-only interval is narrow, the hierarchical one (a t-interval over ≤ 6 datasets) is wide."""
    from tms_bayes.analysis.occupancy import bootstrap_shares

    per_seed = np.array([0.2, 0.5, 0.8])
    per_chain = np.zeros((1, 3, 8, 2))
    per_chain[0, :, :, 0] = per_seed[:, None] + np.random.default_rng(1).normal(0, 0.01, (3, 8))
    per_chain[0, :, :, 1] = 1 - per_chain[0, :, :, 0]
    share, lo, hi, boot, kind = hierarchical_bootstrap(per_chain, n_boot=400)
    _, lo_c, hi_c, _ = bootstrap_shares(per_chain.reshape(1, 24, 2), n_boot=400)
    assert "t-interval over 3 datasets" in kind
    assert hi[0, 0] - lo[0, 0] > 3 * (hi_c[0, 0] - lo_c[0, 0])
    assert lo[0, 0] < 0.2 and hi[0, 0] > 0.8  # t(2) interval over 0.2, 0.5, 0.8
    per_chain10 = np.concatenate([per_chain] * 4, axis=1)[:, :10]
    _, lo10, hi10, _, kind10 = hierarchical_bootstrap(per_chain10, n_boot=400)
    assert "hierarchical bootstrap" in kind10 and lo10[0, 0] < 0.45 < 0.55 < hi10[0, 0]
