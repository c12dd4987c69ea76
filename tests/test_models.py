"""PyMC model builders (SPEC 1–2, 5) and their JAX compilation."""

import math

import numpy as np
import pytest

from tms_bayes._jax import jnp
from tms_bayes.inference.compile import as_jax, compile_model, ravel_point
from tms_bayes.models.data import relu_inputs, tms_inputs
from tms_bayes.models.relu import default_beta, pt1_truth, pt2_truth, relu_data, relu_model, symmetric_truth
from tms_bayes.models.tms import tms_model
from tms_bayes.theory import empirical_loss


def tms_point(rng):
    return {"W": rng.normal(size=(2, 6)), "b": rng.normal(size=6)}


def test_tms_log_density_is_minus_n_beta_Ln_minus_prior(rng):
    """log p(w | D_n) = −n β L_n(w) − ½‖w‖²/prior_std² + const, with L_n from the theory layer."""
    X = tms_inputs(250, 6, seed=3)
    n, beta, prior_std = 180, 0.6, 2.0
    mask = (np.arange(250) < n).astype(float)
    model = tms_model(X, beta=beta, prior_std=prior_std, mask=mask)
    logp = model.compile_logp()

    def expected(p):
        return (
            -n * beta * empirical_loss(p["W"], p["b"], X[:n])
            - 0.5 * (np.sum(p["W"] ** 2) + np.sum(p["b"] ** 2)) / prior_std**2
        )

    p0 = tms_point(rng)
    for _ in range(5):
        p = tms_point(rng)
        assert logp(p) - logp(p0) == pytest.approx(expected(p) - expected(p0), rel=1e-10)


def test_sigma_one_halves_the_likelihood_weight(rng):
    """σ = 1 gives −n L_n / 2: the convention that moves the 5 → 6 crossover (SPEC 2)."""
    X = tms_inputs(100, 6, seed=4)
    lp_half, lp_one = tms_model(X).compile_logp(), tms_model(X, sigma=1.0).compile_logp()
    p, q = tms_point(rng), tms_point(rng)
    prior = lambda p: -0.5 * (np.sum(p["W"] ** 2) + np.sum(p["b"] ** 2))  # noqa: E731
    d_half = (lp_half(p) - prior(p)) - (lp_half(q) - prior(q))
    d_one = (lp_one(p) - prior(p)) - (lp_one(q) - prior(q))
    assert d_one == pytest.approx(d_half / 2, rel=1e-10)


@pytest.mark.parametrize("which", ["tms", "relu"])
def test_jax_logp_equals_pymc_compile_logp(which, rng):
    if which == "tms":
        model = tms_model(tms_inputs(120, 6, seed=5), beta=0.8, mask=(np.arange(120) < 90).astype(float))
        points = [tms_point(rng) for _ in range(5)]
    else:
        X, y = relu_data(pt1_truth(1.2), 150, seed=1)
        model = relu_model(X, y, d=2, mask=(np.arange(150) < 100).astype(float))
        points = [
            {
                "w": rng.normal(size=(2, 2)),
                "b": rng.normal(size=2),
                "q": rng.normal(size=2),
                "c": rng.normal(),
            }
            for _ in range(5)
        ]
    cm = compile_model(model)
    logp = model.compile_logp()
    data = as_jax(cm.data)
    for p in points:
        assert float(cm.logp(jnp.asarray(ravel_point(cm, p)), data)) == pytest.approx(logp(p), rel=1e-11)


@pytest.mark.parametrize("gauge, sigma", [("none", math.sqrt(0.5)), ("so2", 1.0)])
def test_sorted_tms_likelihood_equals_the_pymc_models_logp_and_gradient(gauge, sigma, rng):
    """The engine's log density of a TMS model (``CompiledModel.logdensity``: the sorted form,
    O(c² log N) per call) equals PyMC's own ``model.logp()`` and its gradient — at random points, a
    0/1 mask, a fractional mask (SMC's data path), β ≠ 1, both σ conventions and both
    parameterisations.  Tolerance: rounding of sums of ~10³ terms of size ~1 (≈ 1e-12 relative)."""
    from tms_bayes._jax import jax

    N = 300
    model = tms_model(
        tms_inputs(N, 6, seed=8), gauge=gauge, sigma=sigma, beta=0.7, mask=(np.arange(N) < 200) * 1.0
    )
    cm = compile_model(model)
    value, grad = model.compile_logp(), model.compile_dlogp()
    for mask in ((np.arange(N) < 200) * 1.0, np.clip(137.4 - np.arange(N), 0.0, 1.0)):
        model.set_data("mask", mask)
        data = as_jax(cm.with_data(mask=mask))
        fast = cm.logdensity(data)
        for _ in range(4):
            flat = rng.normal(size=cm.dim) * 1.5
            point = {k: np.asarray(v) for k, v in cm.unravel(flat).items()}
            assert float(fast(jnp.asarray(flat))) == pytest.approx(value(point), rel=1e-11)
            g = np.asarray(jax.grad(fast)(jnp.asarray(flat)))
            # PyMC's flat gradient is in the model's value-variable order: the compiled flat layout
            np.testing.assert_allclose(g, grad(point), rtol=1e-9, atol=1e-9)


def test_sorted_form_only_for_one_nonzero_per_row():
    """A TMS model on inputs with several non-zero entries per row has no sorted form (the engine uses
    the per-row graph), and a model that has one refuses such inputs as new data, saying why."""
    X = tms_inputs(50, 4, seed=1)
    dense = X + 0.1
    assert compile_model(tms_model(dense))._sufficient is None
    cm = compile_model(tms_model(X))
    assert cm._sufficient is not None
    with pytest.raises(ValueError, match="at most one non-zero entry per row"):
        cm.with_data(X=dense)
    cm.with_data(X=tms_inputs(50, 4, seed=2))  # other TMS inputs are fine
    with pytest.raises(ValueError, match="at most one non-zero entry per row"):
        cm.logdensity({**cm.data, "X": dense})  # concrete data given straight to the engine
    model = tms_model(X)
    model.set_data("X", dense)  # replaced before compiling: the per-row graph serves it
    assert compile_model(model)._sufficient is None


def test_relu_log_density_and_default_beta(rng):
    X, y = relu_data(pt2_truth(2.0), 300, seed=2)
    model = relu_model(X, y, d=3)
    assert float(model["beta"].get_value()) == pytest.approx(1 / math.log(300))
    logp = model.compile_logp()
    cm = compile_model(model)

    def Ln(p):
        f = np.maximum(X @ p["w"].T + p["b"], 0.0) @ p["q"] + p["c"]
        value = float(cm.loss(jnp.asarray(ravel_point(cm, p)), as_jax(cm.data)))
        assert value == pytest.approx(np.mean((y - f) ** 2), rel=1e-12)
        return value

    def expected(p):  # β Σ −(y − f)²/2 − ½‖w‖²
        return -300 * default_beta(300) * Ln(p) / 2 - 0.5 * sum(np.sum(np.square(v)) for v in p.values())

    pts = [
        {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=3), "q": rng.normal(size=3), "c": rng.normal()}
        for _ in range(3)
    ]
    assert logp(pts[1]) - logp(pts[0]) == pytest.approx(expected(pts[1]) - expected(pts[0]), rel=1e-10)


def test_truths_match_spec():
    t1 = pt1_truth(1.0)
    x = np.array([[0.5, 0.5], [-0.2, 0.9], [1.0, -1.0]])
    w1, w2 = np.array([math.cos(1.0), math.sin(1.0)]), np.array([-math.cos(1.0), math.sin(1.0)])
    expected = np.maximum(x @ w1 - 0.3, 0) + np.maximum(x @ w2 - 0.3, 0)
    np.testing.assert_allclose(t1(x), expected, rtol=1e-14)
    t2 = pt2_truth(2.5)
    np.testing.assert_allclose(t2.w[np.argmax(t2.q)], [-1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(sorted(t2.q), [1.0, 1.0, 2.5])
    np.testing.assert_allclose(np.linalg.norm(t2.w, axis=1), 1.0)
    np.testing.assert_allclose(
        np.degrees(np.arctan2(t2.w[:, 1], t2.w[:, 0])), [60.0, -60.0, -180.0], atol=1e-9
    )
    assert symmetric_truth(4).w.shape == (4, 2)
    X = relu_inputs(1000, seed=0)
    assert X.min() >= -1 and X.max() <= 1


def test_datasets_are_nested_and_seeded():
    a, b = tms_inputs(500, 6, seed=11), tms_inputs(500, 6, seed=11)
    np.testing.assert_array_equal(a, b)
    assert np.all((a > 0).sum(1) == 1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(X=np.full((10, 6), np.nan)), "X must be finite"),
        (dict(X=np.zeros((10, 6)), mask=np.ones(9)), "mask must be a 0/1 vector of length N = 10"),
        (dict(X=np.zeros((10, 6)), mask=np.zeros(10)), "at least one row"),
        (dict(X=np.zeros((10, 6)), beta=0.0), "beta must be a finite number > 0"),
        (dict(X=np.zeros((10, 6)), prior_std=-1.0), "prior_std"),
    ],
)
def test_tms_model_rejects_bad_input(kwargs, match):
    X = kwargs.pop("X")
    with pytest.raises(ValueError, match=match):
        tms_model(X, **kwargs)


def test_relu_model_rejects_bad_input():
    X, y = relu_data(pt1_truth(1.1), 20, seed=0)
    with pytest.raises(ValueError, match="y must have shape"):
        relu_model(X, y[:10], d=2)
    with pytest.raises(ValueError, match=r"theta must be in \(0, π/2\]"):
        pt1_truth(2.0)
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        relu_model(X, y, d=0)


def test_datasets_are_stable_in_n():
    """Row k of a seed's dataset does not depend on how many rows are drawn (issue 17, item 2)."""
    from tms_bayes.models.data import tms_inputs
    from tms_bayes.models.relu import pt1_truth, relu_data

    assert np.array_equal(tms_inputs(600, 6, 0)[:100], tms_inputs(1200, 6, 0)[:100])
    assert np.array_equal(tms_inputs(1200, 6, 0)[:100], tms_inputs(100, 6, 0))
    X = tms_inputs(5000, 6, 3)
    assert (
        np.all((X > 0).sum(1) == 1) and abs((X > 0).mean(0) - 1 / 6).max() < 0.02
    )  # one uniform feature per row
    Xa, ya = relu_data(pt1_truth(1.2), 300, seed=1)
    Xb, yb = relu_data(pt1_truth(1.2), 1000, seed=1)
    assert np.array_equal(Xa, Xb[:300]) and np.array_equal(ya, yb[:300])


def test_sorted_form_first_built_inside_a_trace_serves_later_programs():
    """The sorted form is converted on first use, which is usually inside a sampler's ``jit``; its
    constants must not be that trace's tracers (they leaked into the next program: JAX's
    ``UnexpectedTracerError``, or "compiled for 18 inputs but called with 9" under ``shard_map``)."""
    from tms_bayes._jax import jax

    cm = compile_model(tms_model(tms_inputs(80, 6, seed=2)))
    data = as_jax(cm.data)
    w = jnp.asarray(np.random.default_rng(0).normal(size=cm.dim))
    first = jax.jit(lambda x, d: cm.logdensity(d)(x))(w, data)
    second = jax.jit(lambda x, d: jax.grad(cm.logdensity(d))(x))(w, data)
    assert float(first) == pytest.approx(float(cm.logp(w, data)), rel=1e-11)
    np.testing.assert_allclose(second, jax.grad(cm.logp)(w, data), rtol=1e-9, atol=1e-9)
