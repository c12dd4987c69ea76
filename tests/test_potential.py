"""Closed-form TMS potential (SPEC 1.1) against quadrature, Monte Carlo and its symmetries."""

import numpy as np
import pytest
from scipy import integrate

from tms_bayes.models.data import tms_inputs
from tms_bayes.theory import empirical_loss, empirical_loss_jax, kgon, potential, potential_grad, potential_jax
from tms_bayes._jax import jax, jnp


def quadrature_potential(W, b):
    """L = (1/c) Σ_i Σ_j ∫₀¹ (μ δ_ij − ReLU(μ a_ij + b_j))² dμ by adaptive quadrature."""
    c = W.shape[1]
    a = W.T @ W
    total = 0.0
    for i in range(c):
        for j in range(c):
            f = lambda m: (m * (i == j) - max(m * a[i, j] + b[j], 0.0)) ** 2  # noqa: E731
            kink = -b[j] / a[i, j] if a[i, j] != 0 else None
            pts = [kink] if kink is not None and 0 < kink < 1 else None
            total += integrate.quad(f, 0, 1, points=pts, epsabs=1e-14, epsrel=1e-13)[0]
    return total / c


@pytest.mark.parametrize("c", [3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("r", [1, 2, 3])
def test_closed_form_matches_quadrature(c, r, rng):
    for _ in range(4):
        W = rng.normal(size=(r, c)) * rng.uniform(0.3, 1.5)
        b = rng.normal(size=c) * 0.6
        assert potential(W, b) == pytest.approx(quadrature_potential(W, b), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("c", [3, 6, 8])
@pytest.mark.parametrize("r", [1, 2, 3])
def test_closed_form_matches_monte_carlo(c, r, rng):
    """L = E[L_n]: the per-sample losses give the Monte Carlo standard error; require |ΔL| < 5 SE."""
    X = tms_inputs(100_000, c, seed=c * 10 + r)
    for _ in range(3):
        W = rng.normal(size=(r, c))
        b = rng.normal(size=c) * 0.5
        out = np.maximum(X @ (W.T @ W) + b, 0.0)
        per_sample = ((X - out) ** 2).sum(axis=1)
        se = per_sample.std(ddof=1) / np.sqrt(len(per_sample))
        Ln = empirical_loss(W, b, X)
        assert Ln == pytest.approx(per_sample.mean(), rel=1e-12)
        assert abs(potential(W, b) - Ln) < 5 * se


def test_batched_and_jax_agree_with_numpy(rng):
    W = rng.normal(size=(7, 2, 6))
    b = rng.normal(size=(7, 6))
    X = tms_inputs(500, 6, seed=1)
    np.testing.assert_allclose(potential(W, b), [potential(W[i], b[i]) for i in range(7)], rtol=1e-14)
    np.testing.assert_allclose(np.asarray(potential_jax(W, b)), potential(W, b), rtol=1e-13)
    np.testing.assert_allclose(np.asarray(empirical_loss_jax(W, b, X)), empirical_loss(W, b, X), rtol=1e-13)


def test_gradient_matches_finite_differences(rng):
    W = rng.normal(size=(2, 6))
    b = rng.normal(size=6) * 0.5
    gW, gb = potential_grad(W, b)
    h = 1e-6
    for idx in [(0, 0), (1, 3), (0, 5)]:
        E = np.zeros_like(W)
        E[idx] = h
        fd = (potential(W + E, b) - potential(W - E, b)) / (2 * h)
        assert gW[idx] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    for j in [0, 4]:
        e = np.zeros(6)
        e[j] = h
        assert gb[j] == pytest.approx((potential(W, b + e) - potential(W, b - e)) / (2 * h), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(
    "W,b",
    [
        (np.zeros((2, 6)), np.zeros(6)),  # every a_ij = 0 and b = 0: all branches at their kink
        (np.zeros((2, 6)), -np.ones(6)),  # dead columns
        (np.eye(2, 6), np.zeros(6)),  # orthogonal columns: a_ij = 0 exactly
        (kgon(4, 6, sigma=1, phi=2).W, kgon(4, 6, sigma=1, phi=2).b),  # 4-gon family: kinks everywhere
    ],
)
def test_gradients_are_nan_free_at_degenerate_points(W, b):
    gW, gb = potential_grad(W, b)
    assert np.all(np.isfinite(gW)) and np.all(np.isfinite(gb))
    hess = jax.hessian(lambda w: potential_jax(w[:12].reshape(2, 6), w[12:]))(jnp.concatenate([jnp.ravel(W), b]))
    assert np.all(np.isfinite(np.asarray(hess)))


def test_invariance_under_rotation_reflection_and_permutation(rng):
    for r in (2, 3):
        W = rng.normal(size=(r, 6))
        b = rng.normal(size=6) * 0.5
        L0 = potential(W, b)
        Q, _ = np.linalg.qr(rng.normal(size=(r, r)))  # random orthogonal (rotation or reflection)
        assert potential(Q @ W, b) == pytest.approx(L0, rel=1e-12)
        R = np.diag([1.0] * (r - 1) + [-1.0])  # a pure reflection
        assert potential(R @ W, b) == pytest.approx(L0, rel=1e-12)
        perm = rng.permutation(6)
        assert potential(W[:, perm], b[perm]) == pytest.approx(L0, rel=1e-12)
        assert potential(W[:, perm], b) != pytest.approx(L0, rel=1e-6)  # biases must move with columns


def test_empirical_loss_is_unhalved_sum_over_outputs():
    """One sample x = 0.5 e_0 with W = 0, b = 0: f = 0, loss = ‖x‖² = 0.25 (not /2, not /c)."""
    X = np.zeros((1, 6))
    X[0, 0] = 0.5
    assert empirical_loss(np.zeros((2, 6)), np.zeros(6), X) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "W,b,match",
    [
        (np.full((2, 6), np.nan), np.zeros(6), "W must be finite"),
        (np.zeros((2, 6)), np.array([0, 0, 0, 0, 0, np.inf]), "b must be finite"),
        (np.zeros((2, 6)), np.zeros(5), "b must have shape"),
        (np.zeros(6), np.zeros(6), "W must have at least 2"),
    ],
)
def test_bad_input_is_rejected(W, b, match):
    with pytest.raises(ValueError, match=match):
        potential(W, b)


def test_bad_data_is_rejected():
    with pytest.raises(ValueError, match="X must have shape"):
        empirical_loss(np.zeros((2, 6)), np.zeros(6), np.zeros((10, 5)))
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        tms_inputs(0, 6)
