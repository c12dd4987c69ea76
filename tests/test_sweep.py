"""The compile-once NUTS engine and resumable sweeps."""

import json
import math
import os

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

from tms_bayes._jax import jax, jnp
from tms_bayes.analysis.diagnostics import invariant_quantities, summarize_run
from tms_bayes.inference.compile import compile_model
from tms_bayes.inference.nuts import ChainSampler, NutsSettings, stack_data
from tms_bayes.inference.sweep import Sweep, SweepSettings, build_model, dataset, load_sweep, run_sweep

TINY = dict(model="tms", n=(60, 120), seeds=1, chains=2, tune=40, draws=30)


def conjugate_model(y, mask, beta, prior_std=1.0, sigma=1.0):
    """μ ~ N(0, s²); β-tempered y_k ~ N(μ, σ²) on masked rows — written like the TMS model."""
    with pm.Model() as m:
        yd = pm.Data("y", y)
        md = pm.Data("mask", mask)
        bd = pm.Data("beta", np.asarray(beta))
        mu = pm.Normal("mu", 0.0, prior_std)
        pm.Potential("loglik", bd * pt.sum(md * (-0.5 * (yd - mu) ** 2 / sigma**2)))
    return m


@pytest.mark.parametrize("chain_method", ["sequential", "vectorized"])
def test_nuts_recovers_conjugate_gaussian_posterior_for_several_n(chain_method):
    """Posterior N(m, v): precision 1/s² + βn/σ², mean v·β Σ y/σ².  Checked for two n and two β
    through one compiled program; tolerances are 5 Monte Carlo standard errors (ESS-based)."""
    rng = np.random.default_rng(0)
    y = rng.normal(1.5, 1.0, size=200)
    cm = compile_model(conjugate_model(y, np.ones(200), 1.0))
    settings = NutsSettings(tune=300, draws=400, chunk=350, chain_method=chain_method)
    chains = 4
    sampler = ChainSampler(cm, settings, chains)
    for n, beta in [(20, 1.0), (200, 0.3)]:
        data = cm.with_data(mask=(np.arange(200) < n).astype(float), beta=beta)
        draws, _ = sampler.run(jax.random.key(n), jnp.zeros((chains, 1)), stack_data(data, chains))
        x = draws["position"][..., 0]
        v = 1.0 / (1.0 + beta * n)
        m = v * beta * y[:n].sum()
        ess = chains * settings.draws / 3  # conservative: NUTS on a Gaussian gives ESS ≳ draws/3
        assert x.mean() == pytest.approx(m, abs=5 * math.sqrt(v / ess))
        assert x.var() == pytest.approx(v, rel=5 * math.sqrt(2 / ess))
    assert sampler.compilations == 1  # one program for every n and β


def test_sweep_compiles_once_and_writes_inferencedata(tmp_path):
    settings = SweepSettings(**{**TINY, "n": (40, 80, 120)})
    sweep = run_sweep(settings, tmp_path / "sw", progress=False, log=lambda *_: None)
    assert sweep.compilations == 1  # warmup and sampling in one program, for all three n
    assert len(sweep.completed) == 3
    idata = sweep.load(80, 0)
    assert set(idata.groups()) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    assert idata.posterior["W"].shape == (2, 30, 2, 6)
    assert idata.observed_data["X"].shape == (80, 6)
    for stat in ("diverging", "tree_depth", "energy", "step_size", "lp"):
        assert stat in idata.sample_stats
    attrs = idata.posterior.attrs
    assert attrs["n"] == 80 and attrs["setting_chains"] == 2 and attrs["tms_bayes_version"]
    # L_n recorded in the posterior equals the loss of the recorded W, b on D_n
    from tms_bayes.theory import empirical_loss

    W, b = idata.posterior["W"].values[0, -1], idata.posterior["b"].values[0, -1]
    assert float(idata.posterior["L_n"].values[0, -1]) == pytest.approx(empirical_loss(W, b, idata.observed_data["X"].values), rel=1e-10)
    manifest = json.loads((tmp_path / "sw" / "manifest.json").read_text())
    assert manifest["settings"]["n"] == [40, 80, 120] and len(manifest["completed"]) == 3
    assert not list((tmp_path / "sw").rglob("*.tmp"))
    _check_pymc_workflow_on_saved_run(idata)


def _check_pymc_workflow_on_saved_run(idata):
    """A saved run is a PyMC result: its log_likelihood (one value per row of D_n, float32) equals
    PyMC's own pointwise log-likelihood of the rebuilt model summed per row, az.waic/az.loo run on it,
    and posterior predictive sampling draws data of D_n's shape."""
    import arviz as az

    from tms_bayes.inference.sweep import run_model

    model = run_model(idata)
    assert [rv.name for rv in model.observed_RVs] == ["X_obs"] and model["X"].get_value().shape == (80, 6)
    ref = pm.compute_log_likelihood(idata.copy(), model=model, progressbar=False, extend_inferencedata=False)["X_obs"].sum("feature")
    stored = idata.log_likelihood["X_obs"]
    assert stored.dims == ("chain", "draw", "obs") and stored.dtype == np.float32
    np.testing.assert_allclose(stored.values, ref.values, rtol=1e-6, atol=1e-5)
    waic, loo = az.waic(idata), az.loo(idata)
    assert waic.n_data_points == 80 and np.isfinite(waic.elpd_waic) and np.isfinite(loo.elpd_loo)
    # elpd ≈ Σ_k log p(x_k | w) at the posterior, minus p_waic: within the spread of the draws' log-likelihoods
    total = stored.sum("obs").values.astype(float)
    assert total.min() - 5 * total.std() <= waic.elpd_waic <= total.max()
    pp = pm.sample_posterior_predictive(idata, model=model, progressbar=False, random_seed=1).posterior_predictive
    assert pp["X_obs"].shape == (2, 30, 80, 6)
    # the predictive draws are f(x; W, b) + N(0, σ²): their residual variance about the mean is σ² = 1/2
    resid = pp["X_obs"].values - pp["X_obs"].values.mean(axis=(0, 1))
    assert resid.var() == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize(
    "devices,how", [(1, "job"), pytest.param(2, "job", marks=pytest.mark.slow), (2, "main thread")]
)
def test_resume_after_interruption_skips_finished_jobs(tmp_path, monkeypatch, devices, how):
    """One job at a time (devices=1) and two at once (devices=2: two sampling threads on the CPU, which
    must overlap), interrupted inside the second job or in the main thread while both sample."""
    import _thread
    import threading

    settings = SweepSettings(**TINY)
    out = tmp_path / "sw"
    import tms_bayes.inference.sweep as sw

    calls, count = {"n": 0}, threading.Lock()
    together = threading.Barrier(devices, timeout=120)  # two at once: both jobs must be sampling
    original = sw._JaxRunner.run_job

    def interrupted(self, n, seed, data, progress=True, **kwargs):
        with count:
            calls["n"] += 1
            second = calls["n"] == 2
        together.wait()
        if second and how == "job":
            raise KeyboardInterrupt
        if second:
            _thread.interrupt_main()  # as a SIGINT: raised in the main thread, which waits for the jobs
        return original(self, n, seed, data, progress, **kwargs)

    monkeypatch.setattr(sw._JaxRunner, "run_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(settings, out, progress=False, log=lambda *_: None, devices=devices)
    monkeypatch.setattr(sw._JaxRunner, "run_job", original)
    first = load_sweep(out)
    if devices == 1:
        # the first job, handed to the writer thread before the second sampled, was written and recorded
        # all the same; the second's claim was given back
        assert list(first.completed) == ["n000060_seed000"]
        assert first.pending() == [(120, 0)]
    else:
        # both sampled at once: the other job was stopped at its next chunk and discarded, unless it had
        # finished (and was written) first — never half-recorded
        assert len(first.completed) <= 1 and len(first.pending()) == 2 - len(first.completed)
    assert not list((out / "locks").glob("*.lock"))
    kept = {name: (out / path).stat().st_mtime for name, path in first.completed.items()}
    again = run_sweep(settings, out, progress=False, log=lambda *_: None, devices=devices)
    assert len(again.completed) == 2
    assert {name: (out / again.completed[name]).stat().st_mtime for name in kept} == kept  # finished work untouched
    done = run_sweep(settings, out, progress=False, log=lambda *_: None)
    assert done.compilations == 0
    # the interrupted-then-resumed sweep is identical to one run without interruption
    from conftest import assert_identical_runs

    whole = run_sweep(settings, tmp_path / "whole", progress=False, log=lambda *_: None)
    for n, s in whole.jobs():
        assert_identical_runs(whole.load(n, s), done.load(n, s))
    if devices > 1:
        return  # the rest does not depend on how the jobs ran
    # diagnostics.csv is derived from the run files: rebuilt in full by the experiment, even with nothing left to run
    from tms_bayes.experiments.posterior_sweep import run

    (out / "diagnostics.csv").write_text("n,seed\n60,0\n")  # a stale, partial table (a kill between two writes)
    run(settings, out, progress=False, log=lambda *_: None)
    import pandas as pd

    table = pd.read_csv(out / "diagnostics.csv")
    assert sorted(set(zip(table.n, table.seed))) == [(60, 0), (120, 0)] and set(table.quantity) >= {"L_n"}


def test_different_settings_into_same_directory_are_refused(tmp_path):
    run_sweep(SweepSettings(**TINY), tmp_path, progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="different settings.*chains: 2 there, 3 now"):
        Sweep(SweepSettings(**{**TINY, "chains": 3}), tmp_path)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(n=(0, 100)), "n must be an integer >= 1"),
        (dict(n=()), "at least one sample size"),
        (dict(chains=0), "chains must be an integer >= 1"),
        (dict(seeds=0), "seeds must be an integer >= 1"),
        (dict(model="mlp"), "model must be one of tms, relu-pt1, relu-pt2"),
        (dict(backend="stan"), "backend must be one of jax, pymc"),
        (dict(chain_method="parallel"), "chain_method must be one of"),
        (dict(target_accept=1.5), "target_accept must be in"),
        (dict(model="relu-pt1", n=(1, 10)), "n must be >= 2"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SweepSettings(**{**TINY, **kwargs})


def test_n_above_the_dataset_is_rejected():
    settings = SweepSettings(**TINY)
    with pytest.raises(ValueError, match="n = 500 exceeds the dataset's 120 rows"):
        build_model(settings, dataset(settings, 0), 500)


def test_relu_sweep_and_invariant_diagnostics(tmp_path):
    settings = SweepSettings(model="relu-pt1", theta=1.3, n=(200,), seeds=1, chains=2, tune=40, draws=30)
    sweep = run_sweep(settings, tmp_path, progress=False, log=lambda *_: None)
    idata = sweep.load(200, 0)
    assert idata.posterior.attrs["beta_used"] == pytest.approx(1 / math.log(200))
    assert idata.observed_data["y"].shape == (200,)
    table = summarize_run(idata)
    assert {"L_n", "col_norm[0]", "bias[1]"} <= set(table.quantity)
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean", "divergences", "min_ebfmi"} <= set(table.columns)


def test_invariants_do_not_see_rotations_and_permutations(tmp_path):
    sweep = run_sweep(SweepSettings(**{**TINY, "n": (60,)}), tmp_path, progress=False, log=lambda *_: None)
    idata = sweep.load(60, 0)
    base = invariant_quantities(idata)
    theta = 0.9
    R = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]) @ np.diag([1.0, -1.0])
    perm = np.random.default_rng(0).permutation(6)
    moved = idata.copy()
    moved.posterior["W"].values[:] = np.einsum("rs,cdsj->cdrj", R, idata.posterior["W"].values)[..., perm]
    moved.posterior["b"].values[:] = idata.posterior["b"].values[..., perm]
    other = invariant_quantities(moved)
    for var in base.data_vars:
        np.testing.assert_allclose(other[var].values, base[var].values, rtol=1e-12, atol=1e-14)


def test_pymc_backend_produces_the_same_layout(tmp_path):
    settings = SweepSettings(**{**TINY, "n": (60,), "backend": "pymc", "chains": 1, "tune": 20, "draws": 20})
    idata = run_sweep(settings, tmp_path, progress=False, log=lambda *_: None).load(60, 0)
    assert idata.posterior["W"].shape == (1, 20, 2, 6)
    assert idata.posterior.attrs["backend"] == "pymc"
    for stat in ("diverging", "tree_depth", "energy", "step_size"):
        assert stat in idata.sample_stats


_SHARD_SCRIPT = r"""
import json, sys
import tms_bayes
tms_bayes.configure(2)
import numpy as np
from tms_bayes.inference.sweep import Sweep, SweepSettings, run_sweep
st = SweepSettings(n=(40, 80), seeds=1, chains=2, tune=30, draws=20)
out = {}
quiet = lambda *_: None
def record(sweep):
    runs = [sweep.load(n, 0).posterior for n in st.n]
    return {k: [int(r.attrs[k]) for r in runs] for k in ("device_shards", "parallel_jobs")} | {"W": [r.W.values.tolist() for r in runs]}
for devices in (None, 1):  # both jobs at once (one per device), one at a time
    out[str(devices)] = record(run_sweep(st, sys.argv[1] + f"/d{devices}", progress=False, log=quiet, devices=devices))
sharded = Sweep(st, sys.argv[1] + "/sharded")  # a cluster worker's way: one job at a time, chains sharded
sharded.prepare(quiet)
runner = sharded.runner()
for n in st.n:
    sharded.run_job(n, 0, runner)
out["sharded"] = record(sharded)
try:
    tms_bayes.configure(3)
except ValueError as exc:
    out["late"] = str(exc)
print(json.dumps(out))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_chains_shard_over_cores_and_give_the_same_draws(tmp_path):
    """tms_bayes.configure() before JAX starts gives one XLA device per core; the sweep then samples as
    many jobs at once (parallel_jobs == 2 on a 2-core machine, as on CI), a cluster worker's runner shards
    each job's chains over them (device_shards == 2), and the draws are bitwise those of one job at a
    time, unsharded; configuring after JAX started is a clear error."""
    import json
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["None"]["parallel_jobs"] == [2, 2] and out["None"]["device_shards"] == [1, 1]
    assert out["1"]["parallel_jobs"] == [1, 1] and out["1"]["device_shards"] == [1, 1]
    assert out["sharded"]["parallel_jobs"] == [1, 1] and out["sharded"]["device_shards"] == [2, 2]
    assert out["None"]["W"] == out["1"]["W"] == out["sharded"]["W"]
    assert "already running with 2 CPU device" in out["late"]


def test_importing_tms_bayes_leaves_xla_flags_alone():
    import subprocess
    import sys

    code = "import os; import tms_bayes.inference.sweep, tms_bayes.theory; print(os.environ.get('XLA_FLAGS', ''))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, "XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "--xla_dump_to=/tmp/x"


def test_open_sweep_is_one_labelled_object_equal_to_the_files(tmp_path):
    """open_sweep stacks the per-(n, seed) files into (n, seed, chain, draw, …) with the settings in
    attrs; values are the files' own; an unfinished job is NaN and listed."""
    import tms_bayes

    settings = SweepSettings(n=(40, 80), seeds=2, chains=2, tune=20, draws=10)
    sweep = run_sweep(settings, tmp_path / "sw", progress=False, log=lambda *_: None)
    tree = tms_bayes.open_sweep(sweep.out)
    post = tree["posterior"].to_dataset()
    assert dict(post.W.sizes) == {"n": 2, "seed": 2, "chain": 2, "draw": 10, **{d: s for d, s in zip(post.W.dims[4:], (2, 6))}}
    for n in (40, 80):
        for s in (0, 1):
            one = sweep.load(n, s)
            np.testing.assert_array_equal(post.W.sel(n=n, seed=s).values, one.posterior.W.values)
            np.testing.assert_array_equal(tree["sample_stats"]["n_steps"].sel(n=n, seed=s).values, one.sample_stats.n_steps.values)
    assert json.loads(tree.attrs["settings"]) == settings.to_dict() and json.loads(tree.attrs["missing"]) == []
    # an unfinished job (no run file, not in the manifest): NaN, listed
    partial = Sweep(settings, sweep.out)
    name = next(iter(partial.rundir.completed))
    (sweep.out / partial.rundir.completed.pop(name)[0]).unlink()
    partial.rundir.write_manifest()
    tree = tms_bayes.open_sweep(sweep.out)
    assert json.loads(tree.attrs["missing"]) == ["n=40 seed=0"]
    assert np.isnan(tree["posterior"]["L_n"].sel(n=40, seed=0).values).all()
    with pytest.raises(ValueError, match="no manifest"):
        tms_bayes.open_sweep(tmp_path)


_CACHE_SCRIPT = r"""
import json, os, sys
import tms_bayes
tms_bayes.configure()
import jax
hits = []
jax.monitoring.register_event_listener(lambda event, **_: hits.append(event) if "cache_hits" in event else None)
from tms_bayes.inference.sweep import SweepSettings, run_sweep
st = SweepSettings(n=(40, 80), seeds=1, chains=2, tune=30, draws=20)
run_sweep(st, sys.argv[1] + "/first", progress=False, log=lambda *_: None)
first = len(hits)
jax.clear_caches()  # as a new process: nothing compiled in memory
run_sweep(st, sys.argv[1] + "/second", progress=False, log=lambda *_: None)
print(json.dumps({"first": first, "second": len(hits) - first, "entries": len(os.listdir(os.environ["TMS_BAYES_JAX_CACHE"]))}))
"""


@pytest.mark.slow
def test_compilation_cache_is_hit_and_changes_no_draw(tmp_path):
    """tms_bayes.configure() turns on JAX's persistent compilation cache (TMS_BAYES_JAX_CACHE): a sweep
    compiled in one process leaves its programs on disk, the same sweep after every in-memory cache is
    cleared loads them (cache hits, none before), and every run file is identical to the first."""
    import subprocess
    import sys

    from conftest import assert_identical_runs

    env = {**os.environ, "TMS_BAYES_JAX_CACHE": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, "-c", _CACHE_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["entries"] >= 2 and out["first"] == 0 and out["second"] >= 2, out
    first, second = load_sweep(tmp_path / "first"), load_sweep(tmp_path / "second")
    for n, s in first.jobs():
        assert_identical_runs(first.load(n, s), second.load(n, s))


def test_compilation_cache_choice(tmp_path, monkeypatch):
    """Where tms_bayes.configure() puts the compilation cache: TMS_BAYES_JAX_CACHE names it or turns it
    off, and a cache the user set for JAX is left alone."""
    from tms_bayes import _devices

    monkeypatch.setattr(_devices, "_chosen", {})
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs", "jax_compilation_cache_max_size")
    before = {k: jax.config.values[k] for k in names}
    environ = dict(os.environ)
    try:
        monkeypatch.setenv("TMS_BAYES_JAX_CACHE", "off")
        assert _devices.compilation_cache() is None and not jax.config.jax_compilation_cache_dir
        monkeypatch.setenv("TMS_BAYES_JAX_CACHE", str(tmp_path / "c"))
        assert _devices.compilation_cache() == str(tmp_path / "c")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "c")
        assert jax.config.jax_persistent_cache_min_compile_time_secs == _devices.CACHE_MIN_COMPILE_S
        assert jax.config.jax_compilation_cache_max_size == _devices.CACHE_MAX_BYTES
        assert {k: v for k, v in os.environ.items() if k != "TMS_BAYES_JAX_CACHE"} == {
            k: v for k, v in environ.items() if k != "TMS_BAYES_JAX_CACHE"
        }  # nothing for child processes to inherit
        assert _devices.compilation_cache() == str(tmp_path / "c")  # its own choice, recognised
        monkeypatch.setenv("TMS_BAYES_JAX_CACHE", "off")  # turned off again in the same process
        assert _devices.compilation_cache() is None and not jax.config.jax_compilation_cache_dir
        monkeypatch.setenv("TMS_BAYES_JAX_CACHE", str(tmp_path / "c"))
        jax.config.update("jax_compilation_cache_dir", "/their/own")  # the user's own cache: left alone
        assert _devices.compilation_cache() is None and jax.config.jax_compilation_cache_dir == "/their/own"
    finally:
        for k, v in before.items():
            jax.config.update(k, v)


@pytest.mark.slow  # two small sweeps (~15 s): the default suite is near its 15 minutes
@pytest.mark.parametrize("devices", [1, 2])
def test_a_failed_write_stops_the_sweep_and_loses_nothing_else(tmp_path, monkeypatch, devices):
    """Run files are written by a writer thread while the next jobs sample (one at a time, or two at
    once): a write that fails is raised in the sweep (not swallowed), records nothing, leaves no claim
    and no partial file, and the re-run finishes every job."""
    import tms_bayes.inference.sweep as sw

    out = tmp_path / "sw"
    real = sw.write_netcdf

    def full_disk(path, idata):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sw, "write_netcdf", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_sweep(SweepSettings(**TINY), out, progress=False, log=lambda *_: None, devices=devices)
    monkeypatch.setattr(sw, "write_netcdf", real)
    first = load_sweep(out)
    assert first.completed == {} and not list((out / "locks").glob("*.lock")) and not list(out.rglob("*.nc"))
    again = run_sweep(SweepSettings(**TINY), out, progress=False, log=lambda *_: None)
    assert len(again.completed) == 2 and again.statuses == {"n000060_seed000": "done", "n000120_seed000": "done"}
