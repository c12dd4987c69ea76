"""The SO(2) gauge of the TMS model (``models.tms.tms_model(gauge="so2")``) is exact for invariants.

Checked four ways: the density identity behind the proof (gauge log density = unfixed log density +
2 log ρ + log 2π, for any W), the prior (the gauge prior's image is the isotropic Gaussian), the
posterior (the sweep's invariant marginals under both parameterisations agree within their Monte Carlo
errors), and the geometry of the gauge (no regular k-gon lies on its singular set).
"""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from tms_bayes._jax import jnp
from tms_bayes.inference.compile import as_jax, compile_model
from tms_bayes.models.data import tms_inputs
from tms_bayes.models.tms import gauge_basis, gauge_weights, tms_model, to_gauge


def _worst_case(a, c=6):
    """min over alive columns and orders round a regular k-gon of |Σ_alive a_j ω^{σ(j)}| (‖a‖ = 1)."""
    out = {}
    for k in (4, 5, 6):
        omega = np.exp(2j * np.pi * np.arange(k) / k)
        perms = np.array(list(itertools.permutations(range(k))))
        worst = np.inf
        for alive in itertools.combinations(range(c), k):
            worst = min(worst, np.abs(omega[perms] @ np.asarray(a)[list(alive)]).min())
        out[k] = worst
    return out


def test_no_regular_polygon_lies_on_the_gauge_singular_set():
    """The figures in ``gauge_weights``'s docstring: |W e| ≥ 0.11 ρ / 0.20 ρ / 0.32 ρ for every 4-/5-/6-gon;
    'the first column on the x-axis' is singular on every 4- and 5-gon with a dead first column."""
    e = gauge_weights(6)
    assert np.linalg.norm(e) == pytest.approx(1.0)
    worst = _worst_case(e)
    assert worst[4] == pytest.approx(0.1116, abs=5e-4)
    assert worst[5] == pytest.approx(0.1990, abs=5e-4)
    assert worst[6] == pytest.approx(0.3191, abs=5e-4)
    first = _worst_case(np.eye(6)[0])
    assert first[4] == pytest.approx(0.0, abs=1e-12) and first[5] == pytest.approx(0.0, abs=1e-12)


def test_gauge_coordinates_reproduce_every_invariant_of_w():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(50, 2, 6))
    rho, Y = to_gauge(W)
    e, B = gauge_weights(6), gauge_basis(6)
    assert np.allclose(B.T @ B, np.eye(5)) and np.allclose(B.T @ e, 0.0)
    back = np.stack([rho[:, None] * e + Y[:, 0] @ B.T, Y[:, 1] @ B.T], axis=1)
    gram = np.einsum("kri,krj->kij", W, W)
    assert np.allclose(np.einsum("kri,krj->kij", back, back), gram, atol=1e-12)  # W ↦ RW: WᵀW unchanged
    assert np.all(rho > 0) and np.allclose((back @ e)[:, 1], 0.0, atol=1e-12)  # W e on the positive x-axis
    assert np.allclose((back @ e)[:, 0], rho)
    with pytest.raises(ValueError, match="r = 2"):
        to_gauge(rng.normal(size=(3, 6)))


def test_gauge_log_density_is_the_unfixed_one_times_the_orbit_jacobian():
    """log p_gauge(log ρ, Y, b) = log p(W(ρ, Y), b) + log ρ (polar Jacobian) + log ρ (log transform)
    + log 2π (the orbit's length): the identity the docstring's proof integrates."""
    X = tms_inputs(80, 6, seed=3)
    mask = (np.arange(80) < 60).astype(float)
    fixed = compile_model(tms_model(X, gauge="so2", beta=0.7, mask=mask, prior_std=1.3))
    free = compile_model(tms_model(X, beta=0.7, mask=mask, prior_std=1.3))
    assert fixed.param_names == ("gauge_rho_log__", "gauge_Y", "b") and fixed.dim == free.dim - 1
    rng = np.random.default_rng(1)
    for _ in range(5):
        W, b = rng.normal(size=(2, 6)), rng.normal(size=6)
        rho, Y = to_gauge(W)
        w_fixed = jnp.asarray(np.concatenate([[np.log(rho)], Y.ravel(), b]))
        w_free = jnp.asarray(np.concatenate([W.ravel(), b]))
        lp_fixed = float(fixed.logp(w_fixed, as_jax(fixed.data)))
        lp_free = float(free.logp(w_free, as_jax(free.data)))
        # 1e-8: PyMC's Normal log density carries ½ log 2π rounded to ~1e-9 per term
        assert lp_fixed - lp_free - 2 * np.log(rho) == pytest.approx(math.log(2 * math.pi), abs=1e-8)
        assert float(fixed.loss(w_fixed, as_jax(fixed.data))) == pytest.approx(
            float(free.loss(w_free, as_jax(free.data))), rel=1e-12
        )
        point = fixed.point(w_fixed, as_jax(fixed.data))
        assert np.allclose(np.asarray(point["W"]).T @ np.asarray(point["W"]), W.T @ W, atol=1e-12)


def test_gauge_prior_is_the_isotropic_gaussian_on_invariants():
    """Column norms² of prior draws are χ²₂ (prior_std = 1) and inner products have the Gaussian
    product law's variance 2: KS at 20 000 draws, p > 0.001 (a 1-in-1000 false alarm per check)."""
    import pymc as pm

    model = tms_model(tms_inputs(10, 6, seed=0), gauge="so2")
    W = pm.draw(model["W"], draws=20_000, random_seed=7)
    sq = (W**2).sum(axis=1)  # (draws, c): ‖w_j‖²
    for j in range(6):
        assert stats.kstest(sq[:, j], stats.chi2(2).cdf).pvalue > 1e-3
    dots = np.einsum("ki,ki->k", W[:, :, 0], W[:, :, 3])
    ref = np.einsum("kri,kri->k", *np.random.default_rng(3).normal(size=(2, 20_000, 2, 1)))
    assert stats.ks_2samp(dots, ref).pvalue > 1e-3
    assert dots.var() == pytest.approx(2.0, rel=0.06)  # Var(Σ_r x_r y_r) = 2; SE of the variance ≈ 2 %


def test_sweep_invariant_marginals_match_the_unfixed_model(tmp_path):
    """The same job (n = 100, one dataset, 4 chains × 600 draws) under both parameterisations: the
    posterior means of L_n and of every sorted column norm agree within 4 combined Monte Carlo
    standard errors (ArviZ MCSE, from each run's own autocorrelation), and the gauge run's chains agree
    with one another (R̂ < 1.05)."""
    import arviz as az

    from tms_bayes.inference.sweep import SweepSettings, run_sweep

    means = {}
    for gauge in ("so2", "none"):
        st = SweepSettings(n=(100,), seeds=1, chains=4, tune=400, draws=600, gauge=gauge, mass_matrix="diag")
        sweep = run_sweep(st, tmp_path / gauge, progress=False, log=lambda *_: None)
        post = sweep.load(100, 0).posterior
        norms = np.sort(np.linalg.norm(post["W"].values, axis=-2), axis=-1)
        qs = {"L_n": post["L_n"].values, **{f"norm{k}": norms[..., k] for k in range(6)}}
        means[gauge] = {k: (v.mean(), float(np.ravel(az.mcse(v))[0])) for k, v in qs.items()}
        if gauge == "so2":
            assert max(float(az.rhat(v)) for v in qs.values()) < 1.05
            assert set(post.data_vars) >= {"W", "b", "L_n", "gauge_rho", "gauge_Y"}
    for k in means["so2"]:
        (m1, e1), (m0, e0) = means["so2"][k], means["none"][k]
        assert abs(m1 - m0) < 4 * math.hypot(e1, e0), (k, m1, m0, e1, e0)


def test_sweep_settings_resolve_and_refuse_the_gauge():
    from tms_bayes.inference.sweep import SweepSettings

    assert SweepSettings().gauge == "so2"
    assert SweepSettings(r=3).gauge == "none"
    assert SweepSettings(model="relu-pt1").gauge == "none"
    with pytest.raises(ValueError, match="needs the TMS model with r = 2"):
        SweepSettings(model="relu-pt2", gauge="so2")
    with pytest.raises(ValueError, match="gauge"):
        SweepSettings(gauge="first-column")
    with pytest.raises(ValueError, match="mass_matrix"):
        SweepSettings(mass_matrix="full")
    old = SweepSettings.from_dict({"n": [100, 200]})  # a manifest written before the settings existed
    assert (old.gauge, old.mass_matrix) == ("none", "diag")


def test_a_sweep_written_before_the_gauge_setting_reopens_as_unfixed(tmp_path):
    """A manifest without ``gauge``/``mass_matrix`` (written before they existed) reopens with the
    legacy values — unfixed W, diagonal — and resumes without redoing its runs; a default (gauge)
    sweep into the same directory is refused."""
    import json

    from tms_bayes.inference.sweep import Sweep, SweepSettings, load_sweep, run_sweep

    st = SweepSettings(n=(40,), seeds=1, chains=2, tune=30, draws=30, gauge="none")
    run_sweep(st, tmp_path, progress=False, log=lambda *_: None)
    body = json.loads((tmp_path / "manifest.json").read_text())
    for key in ("gauge", "mass_matrix"):
        body["settings"].pop(key)
    (tmp_path / "manifest.json").write_text(json.dumps(body))
    reopened = load_sweep(tmp_path)
    assert (reopened.settings.gauge, reopened.settings.mass_matrix) == ("none", "diag")
    assert reopened.pending() == []
    with pytest.raises(ValueError, match="different settings"):
        Sweep(SweepSettings(n=(40,), seeds=1, chains=2, tune=30, draws=30), tmp_path)
