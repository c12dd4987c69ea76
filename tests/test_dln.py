"""Deep linear networks (models.dln): Aoyagi's λ, the PyMC models, and λ̂ against the known λ."""

import math
import warnings

import numpy as np
import pytest

from tms_bayes.inference.llc import estimate_llc
from tms_bayes.models.dln import (
    dln_dimension,
    dln_learning_coefficient,
    dln_model,
    dln_population_model,
    dln_truth,
    product,
)
from tms_bayes.models.known import rrr_learning_coefficient


def test_aoyagi_formula_is_reduced_rank_regression_at_depth_two_and_symmetric():
    """One hidden layer: Aoyagi (2024) reduces to Aoyagi & Watanabe (2005) on all 1 127 cases with
    widths ≤ 7; λ(widths) = λ(reversed widths) (the model of the transpose); one layer is regular
    (λ = d/2); 0 < λ ≤ d/2 always; and λ does not fall as the true rank grows."""
    for N in range(1, 8):
        for H in range(1, 8):
            for M in range(1, 8):
                for r in range(min(N, H, M) + 1):
                    assert dln_learning_coefficient((N, H, M), r) == rrr_learning_coefficient(N, M, H, r)
    assert dln_learning_coefficient((4, 3), 2) == 6.0
    rng = np.random.default_rng(0)
    for _ in range(200):
        widths = tuple(int(w) for w in rng.integers(1, 12, size=rng.integers(3, 7)))
        r = int(rng.integers(0, min(widths) + 1))
        lam = dln_learning_coefficient(widths, r)
        assert lam == dln_learning_coefficient(widths[::-1], r)
        assert 0 < lam <= dln_dimension(widths) / 2
        if r < min(widths):
            assert dln_learning_coefficient(widths, r + 1) >= lam, (widths, r)


def test_truth_has_the_stated_rank_and_the_population_loss_is_the_frobenius_distance():
    widths = (4, 5, 3, 4)
    truth = dln_truth(widths, 2, seed=1)
    assert np.linalg.matrix_rank(product(truth)) == 2
    model = dln_population_model(widths, truth, n=1000)
    from tms_bayes.inference.compile import compile_model, ravel_point

    cm = compile_model(model)

    def L(point):
        return float(cm.loss(ravel_point(cm, point), cm.data))

    assert L(truth) == pytest.approx(0.0, abs=1e-12)
    other = {k: v + 0.1 for k, v in truth.items()}
    assert L(other) == pytest.approx(0.5 * np.sum((product(other) - product(truth)) ** 2), rel=1e-10)
    # the dataset model's log-likelihood differences match −½ Σ ‖y − W x‖² on its rows
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 4))
    Y = X @ product(truth).T + rng.normal(size=(50, 4))
    data_model = dln_model(X, Y, widths)
    lp = data_model.compile_logp(vars=[*data_model.observed_RVs, *data_model.potentials], jacobian=False)
    want = -0.5 * (np.sum((Y - X @ product(other).T) ** 2) - np.sum((Y - X @ product(truth).T) ** 2))
    assert lp(other) - lp(truth) == pytest.approx(want, rel=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="widths must list at least input and output"):
        dln_learning_coefficient((3,), 1)
    with pytest.raises(ValueError, match="r must be an integer in"):
        dln_learning_coefficient((3, 2, 3), 3)
    with pytest.raises(ValueError, match=r"truth's product must be \(3, 3\)"):
        dln_population_model((3, 2, 3), dln_truth((3, 2, 4), 1), n=100)
    with pytest.raises(ValueError, match="X must be"):
        dln_model(np.zeros((5, 2)), np.zeros((5, 3)), (3, 2, 3))


def test_lambda_hat_recovers_aoyagi_lambda_on_a_small_deep_linear_network():
    """Widths (3, 3, 3, 3), true rank 1: λ = 4 (d = 27).  Population loss at n = 10⁴ (nβ = 1086), γ = 1,
    SGLD ε = 1e-5, 4 chains × 10 000 steps — the benchmark's settings (benchmarks/dln_llc.py), not tuned
    to λ.  Tolerance: 4 SE + 10 % of λ (the issue's accuracy target covers the finite-nβ bias)."""
    widths, r = (3, 3, 3, 3), 1
    truth = dln_truth(widths, r, seed=0)
    lam = dln_learning_coefficient(widths, r)
    assert lam == 4.0
    model = dln_population_model(widths, truth, n=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = estimate_llc(model, truth, sampler="sgld", step_size=1e-5, draws=10_000, burn_in=2000, seed=0)
    assert abs(res.llc_mean - lam) < 4 * res.llc_se + 0.1 * lam, (res.llc_mean, res.llc_se)
    assert res.llc_se < 0.1 * lam and res.diagnostics["acceptance"] > 0.95
    assert math.isnan(res.diagnostics["leak"])  # no phases to leak from in a DLN
