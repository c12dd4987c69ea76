"""Data-tempered SMC (issue: posterior mass per phase): weights and resampling, exact evidences,
quadrature free energies, phase shares that separated NUTS chains cannot recover, the SMC sweep,
PyMC's reference path and the reports."""

import json
import math

import numpy as np
import pytest

from tms_bayes.inference.compile import compile_model
from tms_bayes.inference.smc import (
    SMCSettings,
    conditional_ess,
    ess,
    mask_path,
    number_path,
    prior_particles,
    run_smc,
    systematic_resample,
)
from tms_bayes._jax import jax
from tms_bayes.models.known import one_dim_model, regression_log_evidence, regression_model
from tms_bayes.theory.one_dim import local_free_energy, two_singularities


# ---------------------------------------------------------------------------------------------
# Weights, ESS and resampling
# ---------------------------------------------------------------------------------------------
def test_ess_and_conditional_ess():
    assert ess(np.zeros(100)) == pytest.approx(100)
    assert ess(np.array([0.0] + [-np.inf] * 9)) == pytest.approx(1)
    assert ess(np.array([0.0, 0.0, -np.inf, -np.inf])) == pytest.approx(2)
    lw = np.log(np.full(10, 0.1))
    assert conditional_ess(lw, np.full(10, 3.7)) == pytest.approx(10)  # a constant increment changes nothing
    u = np.array([0.0] * 5 + [-np.inf] * 5)
    assert conditional_ess(lw, u) == pytest.approx(5)  # half the particles lose all weight
    assert conditional_ess(lw, np.full(10, -np.inf)) == 0.0


def test_systematic_resampling_counts_are_floor_or_ceil():
    w = np.random.default_rng(0).dirichlet(np.ones(50))
    for key in jax.random.split(jax.random.key(0), 20):
        idx = systematic_resample(key, np.log(w))
        counts = np.bincount(idx, minlength=50)
        assert counts.sum() == 50
        assert np.all(counts >= np.floor(50 * w) - 1e-9) and np.all(counts <= np.ceil(50 * w) + 1e-9)


def test_settings_validation():
    with pytest.raises(ValueError, match="cess_target"):
        SMCSettings(cess_target=1.5)
    with pytest.raises(ValueError, match="particles"):
        SMCSettings(particles=2)


def test_prior_particles_follow_the_prior_in_the_unconstrained_space():
    m = one_dim_model(two_singularities().K)
    cm = compile_model(m)
    x = prior_particles(m, cm, 20000, seed=1)
    w = -2 + 4 / (1 + np.exp(-x[:, 0]))  # interval transform back to [−2, 2]
    assert abs(w.mean()) < 0.05 and w.std() == pytest.approx(
        4 / math.sqrt(12), rel=0.03
    )  # uniform: SD = 4/√12


# ---------------------------------------------------------------------------------------------
# Exact references
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("clusters", [1, 3])
def test_conjugate_gaussian_log_evidence_is_exact_within_its_own_error(clusters):
    """log Z_n of Bayesian linear regression (exact marginal) at n = 5, 20, 60; 8 independent runs; with
    the pooled mass matrix and with one per k-means cell (moves restricted to their cell)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -0.5, 0.3]) + rng.normal(size=60)
    m = regression_model(X, y)
    cm = compile_model(m)
    grid = [5, 20, 60]
    exact = np.array([regression_log_evidence(X, y, n) for n in grid])
    runs = np.array(
        [
            run_smc(
                cm,
                mask_path(cm.data),
                grid,
                prior_particles(m, cm, 256, seed=s),
                settings=SMCSettings(particles=256, mass_clusters=clusters),
                seed=s,
                progress=False,
            ).log_evidence
            for s in range(8)
        ]
    )
    se = runs.std(axis=0, ddof=1) / math.sqrt(len(runs))
    # 4 SE of the mean over runs, plus 0.02 for the log-of-unbiased-estimator bias (−Var/2 per run ≲ 0.02 here)
    np.testing.assert_array_less(np.abs(runs.mean(axis=0) - exact), 4 * se + 0.02)


def test_one_dimensional_free_energy_matches_quadrature_and_mass_goes_where_chains_cannot():
    """K(w) = (w + 1)²(w − 1)⁴ (SPEC 5), uniform prior on [−2, 2]: F_n by quadrature at n = 10, 100,
    1000, and the posterior mass of the two phases (windows split at the barrier w = −1/3)."""
    ex = two_singularities()
    m = one_dim_model(ex.K)
    cm = compile_model(m)
    grid = [10, 100, 1000]
    split = -1.0 / 3.0
    F_exact = np.array([local_free_energy(ex.K, (-2, 2), n) for n in grid])
    F_reg = np.array([local_free_energy(ex.K, (-2, split), n) for n in grid])
    F_deg = np.array([local_free_energy(ex.K, (split, 2), n) for n in grid])
    p_deg = 1 / (1 + np.exp(F_deg - F_reg))
    F_runs, share = [], []
    for s in range(6):
        res = run_smc(
            cm,
            number_path(cm.data),
            grid,
            prior_particles(m, cm, 1024, seed=s),
            settings=SMCSettings(particles=1024),
            seed=s,
            progress=False,
        )
        F_runs.append(res.free_energy)
        w = -2 + 4 / (1 + np.exp(-res.particles[..., 0]))
        share.append((np.exp(res.log_weights) * (w > split)).sum(axis=1))
    F_runs, share = np.array(F_runs), np.array(share)
    se = F_runs.std(axis=0, ddof=1) / math.sqrt(len(F_runs))
    np.testing.assert_array_less(np.abs(F_runs.mean(axis=0) - F_exact), 4 * se + 0.02)
    se_share = share.std(axis=0, ddof=1) / math.sqrt(len(share))
    np.testing.assert_array_less(np.abs(share.mean(axis=0) - p_deg), 4 * se_share + 0.02)
    assert p_deg[-1] > 0.75  # the degenerate (λ = 1/4) phase holds most of the mass at n = 1000

    # NUTS chains from the prior settle in the basin they start in: share ≈ P(w₀ > −1/3) = 7/12
    from tms_bayes.inference.nuts import ChainSampler, NutsSettings, stack_data
    from tms_bayes._jax import jax, jnp

    chains = 64
    sampler = ChainSampler(cm, NutsSettings(tune=200, draws=100, chunk=100), chains)
    data = stack_data({"n": jnp.asarray(1000.0)}, chains)
    init = jnp.asarray(prior_particles(m, cm, chains, seed=99))
    draws, _ = sampler.run(jax.random.key(0), init, data)
    w = -2 + 4 / (1 + np.exp(-draws["position"][..., 0]))
    per_chain = (w > split).mean(axis=1)
    assert np.all((per_chain == 0) | (per_chain == 1))  # no chain crosses the barrier
    chain_share = per_chain.mean()
    p_init = float(((-2 + 4 / (1 + np.exp(-np.asarray(init[:, 0])))) > split).mean())
    assert chain_share == pytest.approx(p_init, abs=0.05)  # the chains report their starting basins
    assert abs(chain_share - p_deg[-1]) > 0.1  # ... not the posterior mass, which SMC recovers


# ---------------------------------------------------------------------------------------------
# The SMC sweep on TMS, the PyMC reference and the report
# ---------------------------------------------------------------------------------------------
def test_pymc_reference_agrees_with_exact_and_ours():
    from tms_bayes.inference.smc_sweep import pymc_log_evidence

    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    y = X @ np.array([0.7, -0.4]) + rng.normal(size=40)
    exact = regression_log_evidence(X, y)
    ref = pymc_log_evidence(regression_model(X, y), draws=400, chains=2, random_seed=1)
    assert ref["mean"] == pytest.approx(exact, abs=0.3)
    m = regression_model(X, y)
    cm = compile_model(m)
    ours = run_smc(
        cm,
        mask_path(cm.data),
        [40],
        prior_particles(m, cm, 400, seed=2),
        settings=SMCSettings(particles=400),
        seed=2,
        progress=False,
    )
    assert ours.log_evidence[0] == pytest.approx(exact, abs=0.3)


@pytest.fixture(scope="module")
def tiny_smc(tmp_path_factory):
    from tms_bayes.inference.smc_sweep import run_smc_sweep
    from tms_bayes.inference.sweep import SweepSettings

    out = tmp_path_factory.mktemp("smc")
    return run_smc_sweep(
        SweepSettings(n=(30, 60, 90), seeds=2),
        SMCSettings(particles=64, mcmc_steps=2, leapfrog_steps=5),
        out,
        repeats=2,
        progress=False,
        log=lambda *_: None,
    )


def test_smc_sweep_writes_weighted_particles_and_resumes(tiny_smc):
    from tms_bayes.inference.smc_sweep import load_smc_sweep, run_smc_sweep

    ev = tiny_smc.evidence()
    assert len(ev) == 6 and np.all(np.diff(ev.query("seed == 0").F_n) > 0)  # F_n grows with n
    # the loss convention differs from the model's F_n by n·β·(c/2)·log(2πσ²)
    np.testing.assert_allclose(ev.F_n - ev.F_n_loss, ev.n * 3 * math.log(math.pi), rtol=1e-12)
    idata = tiny_smc.load(60, 1)
    assert idata.posterior.W.shape == (1, 64, 2, 6) and idata.sample_stats.log_weight.shape == (1, 64)
    assert np.exp(idata.sample_stats.log_weight.values).sum() == pytest.approx(1.0)
    again = run_smc_sweep(
        tiny_smc.sweep_settings, tiny_smc.settings, tiny_smc.out, progress=False, log=lambda *_: None
    )
    assert sorted(again.completed) == [0, 1] and again.repeats_completed == [1]  # the repeat on disk is kept
    # the repeat: same dataset, its own particles and PRNG stream, so a different (but close) log Z
    rep = tiny_smc.evidence(repeats=True)
    assert list(rep.rep.unique()) == [1] and list(rep.seed.unique()) == [0]
    first = ev.query("seed == 0").F_n.values
    assert not np.allclose(rep.F_n.values, first) and np.allclose(rep.F_n.values, first, atol=3.0)
    assert (
        tiny_smc.load(60, 0, 1).posterior.attrs["smc_seed"]
        != tiny_smc.load(60, 0).posterior.attrs["smc_seed"]
    )
    with pytest.raises(ValueError, match="repeat 2 is not finished"):
        tiny_smc.load(60, 0, 2)
    assert load_smc_sweep(tiny_smc.out).settings == tiny_smc.settings
    with pytest.raises(ValueError, match="particles"):
        run_smc_sweep(tiny_smc.sweep_settings, SMCSettings(particles=128), tiny_smc.out, progress=False)


def test_a_damaged_smc_run_is_set_aside_and_redone_and_its_table_rebuilt(tiny_smc, tmp_path):
    """A truncated SMC run file is named and its whole run (every n of that seed) set aside, kept, and
    redone bit for bit; a foreign file (another n's) likewise; a deleted ``evidence.csv`` is rebuilt
    from the run files' attrs."""
    import shutil

    import pandas as pd

    from conftest import assert_identical_runs
    from tms_bayes.inference.smc_sweep import run_smc_sweep

    out = tmp_path / "smc"
    shutil.copytree(tiny_smc.out, out)
    path = out / "smc" / "n000060_seed001.nc"
    path.write_bytes(path.read_bytes()[:4000])
    shutil.copy(out / "smc" / "n000030_seed000_rep01.nc", out / "smc" / "n000090_seed000_rep01.nc")
    (out / "evidence.csv").unlink()
    log = []
    again = run_smc_sweep(
        tiny_smc.sweep_settings, tiny_smc.settings, out, repeats=2, progress=False, log=log.append
    )
    aside = [line for line in log if "set aside" in line]
    assert len(aside) == 2 and "seed001 set aside (smc/n000060_seed001.nc: unreadable" in aside[0], log
    assert "seed000_rep01 set aside (smc/n000090_seed000_rep01.nc: n: 30 there, 90 expected" in aside[1]
    assert len(list((out / "set_aside").glob("*.nc.*"))) == 6  # both runs' three files, kept
    for n in (30, 60, 90):
        assert_identical_runs(again.load(n, 1), tiny_smc.load(n, 1))
        assert_identical_runs(again.load(n, 0, 1), tiny_smc.load(n, 0, 1))
    for repeats in (False, True):
        pd.testing.assert_frame_equal(
            again.evidence(repeats).drop(columns="wall_time_s"),
            tiny_smc.evidence(repeats).drop(columns="wall_time_s"),
        )


def test_open_sweep_stacks_the_smc_particles(tiny_smc):
    import tms_bayes

    tree = tms_bayes.open_sweep(tiny_smc.out)
    assert tree.attrs["kind"] == "smc" and json.loads(tree.attrs["settings"])["smc"]["particles"] == 64
    np.testing.assert_array_equal(
        tree["posterior"]["W"].sel(n=60, seed=1).values, tiny_smc.load(60, 1).posterior.W.values
    )
    np.testing.assert_array_equal(
        tree["sample_stats"]["log_weight"].sel(n=90, seed=0).values,
        tiny_smc.load(90, 0).sample_stats.log_weight.values,
    )


def test_free_energy_report(tiny_smc, tmp_path):
    from tms_bayes.analysis.free_energy import phase_free_energy, smc_labels, smc_occupancy
    from tms_bayes.analysis.smc_report import smc_report
    from tms_bayes.inference.smc_sweep import phase_minima

    labels = smc_labels(tiny_smc)
    occ = smc_occupancy(labels, n_boot=50)
    np.testing.assert_allclose(occ.share_seed.sum("phase").values, 1.0)
    F = phase_free_energy(labels, occ)
    # F_n(W_α) ≥ F_n: a phase holds at most all of the mass
    assert np.all((F.values >= labels.F_n.values[..., None] - 1e-9) | np.isnan(F.values))
    lm = phase_minima(tiny_smc, labels, ["5", "6"], progress=False)
    assert lm.shape == (3, 2, 2)
    rep = smc_report(tiny_smc, tmp_path / "rep", loss_min=lm, phases=("5", "5+", "6"))
    for name in (
        "report.md",
        "occupancy_estimators.png",
        "free_energy.png",
        "free_energy.csv",
        "occupancy_estimators.csv",
        "lambda_growth.csv",
    ):
        assert (tmp_path / "rep" / name).exists(), name
    assert any(c["kind"] == "theory" and c["n_crit"] == pytest.approx(601, abs=2) for c in rep.crossovers)
    assert any(
        c["kind"] == "theory (Laplace)" and c["n_crit"] == pytest.approx(113.5, abs=1) for c in rep.crossovers
    )
    # the agreement table: per n a verdict; at these tiny n (30-90) with 64 particles both phases are rare
    assert (tmp_path / "rep" / "agreement.csv").exists() and "## Agreement" in (
        tmp_path / "rep" / "report.md"
    ).read_text()
    assert set(rep.agreement.verdict.values) <= {"agree", "disagree", "not comparable"}
    assert "not comparable" in set(rep.agreement.verdict.values)
    # the spread of SMC's ΔF over datasets and, apart, over the two runs on dataset 0
    assert {"smc_sd", "smc_sd_runs"} <= set(rep.agreement) and rep.agreement.attrs["runs_on_one_dataset"] == 2
    assert "SD SMC runs" in rep.agreement_table().columns
    cross = (tmp_path / "rep" / "crossovers.csv").read_text()
    assert "theory (Laplace, per dataset)" in cross and (tmp_path / "rep" / "log_odds.png").exists()


def test_smc_cli_bad_input(tmp_path, capsys):
    from tms_bayes.cli import main

    assert main(["smc", "--model", "relu-pt1", "--out", str(tmp_path / "a")]) == 2
    assert "tms" in capsys.readouterr().err
    assert main(["smc", "--cess-target", "2", "--out", str(tmp_path / "b")]) == 2
    assert "cess_target" in capsys.readouterr().err
    assert main(["smc", "--chains-run", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "occupancy.nc" in capsys.readouterr().err
    assert main(["run", "--estimator", "smc", "--particles", "3", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()


@pytest.mark.slow  # 35–50 s on 2 cores (measured 2026-12-04); CI runs the slow tests too
def test_run_with_both_estimators_end_to_end(tmp_path, capsys):
    from tms_bayes.cli import main

    out = tmp_path / "run"
    args = [
        "run",
        "--estimator",
        "both",
        "--n",
        "40,80",
        "--seeds",
        "2",
        "--chains",
        "2",
        "--tune",
        "30",
        "--draws",
        "30",
        "--particles",
        "32",
        "--mcmc-steps",
        "1",
        "--leapfrog-steps",
        "4",
        "--smc-repeats",
        "2",
        "--tsne-samples",
        "100",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "crossover 5 -> 6 (theory)" in text
    assert (out / "report.md").exists() and (out / "smc" / "report" / "report.md").exists()
    table = (out / "smc" / "report" / "occupancy_estimators.csv").read_text()
    assert "chains" in table and "SMC" in table  # both estimators, one table
    # runs side by side (the conventions study's tool): the same run twice gives the same crossovers twice
    assert main(["compare", f"a={out}", f"b={out}", "--out", str(tmp_path / "cmp")]) == 0
    from tms_bayes.analysis.compare import compare_runs

    comp = compare_runs({"a": out, "b": out}, tmp_path / "cmp2")
    t = comp.table()
    assert list(t.columns) == ["estimator", "a", "b"] and (t.a == t.b).all()
    assert {"theory", "smc", "chains"} <= set(t.estimator)
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "cmp3")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a directory" in err and not (tmp_path / "cmp3").exists()
    (tmp_path / "empty-run").mkdir()  # a directory without the main job's files: named when read
    assert main(["compare", str(tmp_path / "empty-run"), "--out", str(tmp_path / "cmp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "crossovers.csv" in err and not (tmp_path / "cmp4").exists()


@pytest.mark.slow
def test_smc_posterior_mass_agrees_with_finite_n_theory_and_not_with_the_old_instruments(tmp_path):
    """Issue 14's headline on a small grid (the default run's datasets 0-3 at n = 400, 500; 2048
    particles).  Agreement is |SMC − theory| ≤ 2 SE of the paired difference over the 4 datasets, with
    the SE capped at 0.5 nats (measured: 0.11-0.18 in the default run, 0.41 in one run of this grid
    with 1024 particles, whose Monte Carlo SD per dataset is ≈ 0.3) so that a noisy run cannot agree
    by default.  SMC's log-odds F5 − F6 agrees with the per-dataset Laplace theory on the classifier's
    region (flat region + shell), and fails against (a) the paper's constant c = ½‖w*‖² (crossover
    601: ΔF < 0 here, where SMC measures ΔF ≈ +1.3 to +2.2) and (b) SMC shares from the old threshold
    classifier, which on the same particles loses the shell's 5-gon mass: ΔF shifts up by log R₅(n) ≈
    1.1-1.2 nats (theory.laplace.region_log_ratio), predicted within 0.4."""
    from tms_bayes.analysis.free_energy import agreement, smc_labels, smc_occupancy
    from tms_bayes.analysis.phases import Thresholds
    from tms_bayes.analysis.smc_report import smc_report
    from tms_bayes.inference.smc_sweep import run_smc_sweep
    from tms_bayes.inference.sweep import SweepSettings
    from tms_bayes.theory import critical_points, phase_free_energies
    from tms_bayes.theory.laplace import region_log_ratio

    def agrees(a):  # the capped rule of the docstring
        return np.abs(a.difference.values) <= 2 * np.minimum(a.difference_se.values, 0.5)

    n = np.array([400.0, 500.0])
    smc = run_smc_sweep(
        SweepSettings(n=(400, 500), seeds=4),
        SMCSettings(particles=2048),
        tmp_path / "smc",
        progress=False,
        log=lambda *_: None,
    )
    ag = smc_report(smc, tmp_path / "rep").agreement
    table = ag[["smc_dF", "theory_dF", "difference", "difference_se"]].to_dataframe()
    assert (
        list(ag.verdict.values) == ["agree", "agree"]
        and np.all(ag.difference_se.values <= 0.5)
        and agrees(ag).all()
    ), table
    assert np.all(ag.smc_dF.values > 0.5)  # the 6-gon already holds most of the mass at n = 400

    theory = ag.theory_dF_seed.transpose("n", "seed")
    paper = phase_free_energies(critical_points(6), ["5", "6"], n)
    paper_dF = (paper.sel(phase="5") - paper.sel(phase="6")).values
    assert np.all(paper_dF < 0)
    occ = smc_occupancy(smc_labels(smc), n_boot=50)
    assert not agrees(agreement(occ, theory * 0 + paper_dF[:, None])).any()
    old = agreement(smc_occupancy(smc_labels(smc, Thresholds()), n_boot=50), theory)
    assert not agrees(old).any(), old[["smc_dF", "difference", "difference_se"]].to_dataframe()
    shift = old.smc_dF.values - ag.smc_dF.values
    np.testing.assert_allclose(shift, region_log_ratio(critical_points(6), "5", n, tol=0.4)[0], atol=0.4)


def test_the_smc_driver_is_init_then_steps():
    """run_smc is a thin driver: stepping the state by hand with smc_init/smc_step to each grid point
    reproduces its particles, weights and log Z bit for bit."""
    from tms_bayes.inference.compile import compile_model
    from tms_bayes.inference.smc import (
        SMCSettings,
        _programs,
        mask_path,
        prior_particles,
        run_smc,
        smc_init,
        smc_step,
    )
    from tms_bayes.inference.sweep import SweepSettings, build_model, dataset

    st = SweepSettings(n=(30, 60), seeds=1)
    model = build_model(st, dataset(st, 0), 60)
    cm = compile_model(model)
    path = mask_path(cm.with_data(**dataset(st, 0), beta=1.0))
    settings = SMCSettings(particles=32, mcmc_steps=2)
    x0 = prior_particles(model, cm, 32, seed=5)
    res = run_smc(cm, path, [30, 60], x0, settings=settings, seed=5, progress=False)
    programs = _programs(cm, path, settings)
    state = smc_init(programs, x0, settings, seed=5)
    for i, target in enumerate(np.asarray([30.0, 60.0])):
        while state.s < target:
            state, stage = smc_step(state, target, programs, settings)
            assert 0 < stage["ess"] <= 32 and stage["s"] == state.s
        np.testing.assert_array_equal(np.asarray(state.x), res.particles[i])
        np.testing.assert_array_equal(state.logw, res.log_weights[i])
        assert state.log_z == res.log_evidence[i]
    assert state.stages == len(res.stages["s"])


def test_smc_stage_programs_are_compiled_once_for_every_dataset_and_particles_split_on_request():
    """Two datasets of one model share the compiled stage programs (the data are arguments: no program
    is traced again for the second dataset), and ``shards`` splits the particles over that many
    devices, refusing more than JAX has."""
    from tms_bayes._jax import jax
    from tms_bayes.inference import smc as smc_module

    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 2))
    logz, sizes = [], []
    shards = 2 if jax.device_count() >= 2 else 1
    ys = [X @ np.array([0.5, -0.2]) + rng.normal(size=30) for _ in range(2)]
    m = regression_model(X, ys[0])
    cm = compile_model(m)
    for seed, y in enumerate(ys):
        res = run_smc(
            cm,
            mask_path(cm.with_data(y=y)),
            [10, 30],
            prior_particles(m, cm, 64, seed=seed),
            settings=SMCSettings(particles=64, shards=shards),
            seed=seed,
            progress=False,
        )
        logz.append(res.log_evidence)
        (programs,) = cm.__dict__["_smc_programs"].values()  # one set of programs for both datasets
        sizes.append([p._cache_size() for p in programs])
        # a sanity bound only (64 particles): 8 seeds of this run spread by < 0.1 nats
        np.testing.assert_allclose(
            res.log_evidence, [regression_log_evidence(X, y, n) for n in (10, 30)], atol=0.5
        )
    assert sizes[1] == sizes[0]  # the second dataset compiled nothing new
    assert not np.array_equal(logz[0], logz[1])
    x = smc_module._shard_particles(jax.numpy.zeros((64, 2)), shards)
    assert len(x.sharding.device_set) == shards
    with pytest.raises(ValueError, match="needs 1000 devices"):
        smc_module._shard_particles(jax.numpy.zeros((1000, 2)), 1000)
    with pytest.raises(ValueError, match="multiple of shards"):
        SMCSettings(particles=100, shards=3)


def test_an_smc_directory_written_before_the_gauge_and_shards_settings_reopens(tiny_smc, tmp_path):
    """A manifest without the settings added since (sweep: gauge, mass_matrix; SMC: mass_clusters,
    shards) means the legacy values (unfixed W, diagonal, 1, 1): it reopens with them and nothing is
    redone; with other values it is refused."""
    import shutil

    from tms_bayes.inference.smc_sweep import SMCSweep, load_smc_sweep
    from tms_bayes.inference.sweep import SweepSettings

    old = tmp_path / "old"
    shutil.copytree(tiny_smc.out, old)
    body = json.loads((old / "manifest.json").read_text())
    for key in ("gauge", "mass_matrix"):
        body["settings"]["sweep"].pop(key)
    for key in ("mass_clusters", "shards"):
        body["settings"]["smc"].pop(key)
    (old / "manifest.json").write_text(json.dumps(body))
    reopened = load_smc_sweep(old)
    assert reopened.sweep_settings.gauge == "none" and reopened.settings.shards == 1
    assert reopened.completed == tiny_smc.completed and reopened.completed  # nothing to redo
    with pytest.raises(ValueError, match="different settings"):
        SMCSweep(SweepSettings(n=(30, 60, 90), seeds=2), tiny_smc.settings, old, repeats=2)
