"""Truth sweeps: posteriors of the two-layer ReLU model while the *truth* varies (SPEC 5).

The ReLU phase-transition experiments (Carroll's thesis; DSLT 4) hold n fixed (10 000 by default)
and move the true network along a parameter: θ for Phase Transition 1 ("pt1", two nodes rotating
towards degeneracy), ϑ for Phase Transition 2 ("pt2", one output weight of a three-node truth).

Protocol (SPEC 5): at each value, ``trials`` independent trials; a trial is one NUTS chain on its own
fresh dataset (x ~ U([−1, 1]²), y = f(x; w⁰) + N(0, 1)), started from uniform(−2, 2) on every
coordinate, on the tempered posterior with β = 1/log n.  The trials of one value run as the chains
of one job — each chain with its own dataset, which the compile-once engine allows because data are
per-chain arguments — so the whole sweep uses the one program compiled for the first value.

On disk (``out/``): ``manifest.json`` (settings, finished values; rewritten atomically after each),
``runs/v{index}.nc`` (one InferenceData per value: the trials are independent posteriors on their own
data, so they sit on a ``trial`` dim beside ``chain`` = 1 — ``az.summary`` then gives each trial its own
R̂ instead of mixing unrelated chains; attrs with the truth, the value, every setting and each trial's
data seed; :func:`tms_bayes.analysis.relu_phases.trial_draws` reads any variable as (trial, draw,
...), also from files written before the ``trial`` dim, where ``chain`` was the trial).  Datasets are
not stored: :func:`trial_data` regenerates any of them exactly from its seed.  Re-running the same
command resumes; different settings are refused.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import arviz as az
import numpy as np

from .. import _validate
from .._options import setting
from .._parse import parse_values
from ..models.relu import EXPERIMENTS, experiment_truth, relu_data, relu_model
from ..store.atomic import write_netcdf
from ..store.rundir import RunDir, make_attrs

__all__ = [
    "TruthSweepSettings",
    "TruthSweep",
    "run_truth_sweep",
    "load_truth_sweep",
    "trial_data",
    "build_trial_model",
    "on_grid",
]


@dataclass(frozen=True)
class TruthSweepSettings:
    """Every setting of a truth sweep (module docstring).  ``values`` None: SPEC 5's grid."""

    experiment: str = setting(
        "pt1",
        "pt1: deforming to degeneracy (θ); pt2: weight annihilation (ϑ)",
        positional=True,
        choices=("pt1", "pt2"),
    )
    values: tuple[float, ...] | None = setting(
        None,
        "truth values, start:stop:step or a comma list, pi allowed",
        parse=parse_values,
        show="SPEC 5's grid",
    )
    trials: int = setting(6, "trials per value: one chain on its own dataset each")
    n: int = setting(10_000, "samples per dataset")
    tune: int = setting(300, "NUTS warm-up transitions")
    draws: int = setting(500, "NUTS kept transitions")
    target_accept: float = setting(0.8, "NUTS target acceptance rate")
    max_tree_depth: int = setting(10, "NUTS maximum tree depth")
    chain_method: str = setting("sequential", "map trials with lax.map or vmap", cli=False)
    prior_std: float = setting(1.0, "prior std of every parameter")
    init_scale: float = setting(2.0, "initial points uniform(-s, s)")
    sigma: float = setting(1.0, "likelihood std σ", cli=False)
    beta: float | None = setting(None, "tempering β", parse=float, show="1/log n")
    d: int | None = setting(None, "model nodes", parse=int, show="2 for pt1, 3 for pt2")
    seed_offset: int = setting(0, "first dataset seed")

    def __post_init__(self):
        from .nuts import NutsSettings

        _validate.choice("experiment", self.experiment, EXPERIMENTS)
        values = (
            EXPERIMENTS[self.experiment][1]
            if self.values is None
            else tuple(float(v) for v in np.atleast_1d(self.values))
        )
        if len(values) == 0:
            raise ValueError(f"values must list at least one {self.parameter}")
        if len(set(values)) != len(values):
            raise ValueError(f"values must not repeat, got {list(values)}")
        for v in values:
            experiment_truth(self.experiment, v)  # raises for a value outside the experiment's range
        object.__setattr__(self, "values", tuple(sorted(values)))
        _validate.integer("trials", self.trials, minimum=1)
        _validate.integer("n", self.n, minimum=2)
        _validate.integer("seed_offset", self.seed_offset, minimum=0)
        for name in ("prior_std", "init_scale", "sigma"):
            _validate.positive(name, getattr(self, name))
        if self.beta is not None:
            _validate.positive("beta", self.beta)
        if self.d is not None:
            _validate.integer("d", self.d, minimum=1)
        NutsSettings(self.tune, self.draws, 50, self.target_accept, self.max_tree_depth, self.chain_method)

    @property
    def parameter(self) -> str:
        """ "theta" (pt1) or "vartheta" (pt2)."""
        return EXPERIMENTS[self.experiment][3]

    def resolved_d(self) -> int:
        return self.d if self.d is not None else EXPERIMENTS[self.experiment][2]

    def resolved_beta(self) -> float:
        return float(self.beta) if self.beta is not None else 1.0 / math.log(self.n)

    def data_seed(self, index: int, trial: int) -> int:
        """The dataset seed of trial ``trial`` at the ``index``-th value (distinct for every pair)."""
        code = list(EXPERIMENTS).index(self.experiment)
        return int(np.random.SeedSequence([self.seed_offset, code, index, trial]).generate_state(1)[0])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["values"] = list(self.values)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TruthSweepSettings":
        d = dict(d)
        d["values"] = tuple(d["values"])
        return cls(**d)


def on_grid(value: float, grid) -> bool:
    """Whether ``value`` is one of the values of ``grid`` (to 1e-9 relative: grids hold π/2 and the like)."""
    return min(abs(value - x) for x in grid) <= 1e-9 * max(1.0, abs(value))


def trial_data(settings: TruthSweepSettings, index: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of one trial: n rows from the truth at ``settings.values[index]`` and the trial's seed."""
    index = _validate.integer("index", index, minimum=0, maximum=len(settings.values) - 1)
    trial = _validate.integer("trial", trial, minimum=0, maximum=settings.trials - 1)
    return relu_data(
        experiment_truth(settings.experiment, settings.values[index]),
        settings.n,
        seed=settings.data_seed(index, trial),
    )


def build_trial_model(settings: TruthSweepSettings, index: int, trial: int, *, beta: float | None = None):
    """The PyMC model of one trial (tempered with ``settings``' β unless ``beta`` is given)."""
    X, y = trial_data(settings, index, trial)
    return relu_model(
        X,
        y,
        d=settings.resolved_d(),
        prior_std=settings.prior_std,
        sigma=settings.sigma,
        beta=settings.resolved_beta() if beta is None else beta,
    )


def run_name(index: int) -> str:
    return f"v{index:03d}"


class TruthSweep:
    """A truth-sweep directory: settings, finished values, and the work to do (module docstring)."""

    def __init__(self, settings: TruthSweepSettings, out: str | Path):
        self.settings = settings
        self.out = Path(out)
        self.rundir = RunDir(out, "truth-sweep", settings.to_dict(), "a truth sweep")
        self.compilations = 0
        self.timings: dict[str, float] = {}
        self.statuses: dict[str, str] = {}  # what this run did with each value ("done", "held", …)
        self._loaded: dict[str, az.InferenceData] = {}

    @property
    def completed(self) -> dict[str, str]:
        """{value's run name: its file, relative to ``out``} for every finished value."""
        return {k: v[0] for k, v in self.rundir.completed.items()}

    def pending(self) -> list[int]:
        return [i for i in range(len(self.settings.values)) if not self.rundir.done(run_name(i))]

    def finished(self) -> list[int]:
        return [i for i in range(len(self.settings.values)) if self.rundir.done(run_name(i))]

    def name(self, index: int) -> str:
        """The key of the ``index``-th value's job."""
        return run_name(index)

    def spec(self) -> dict:
        """What a cluster worker needs to reopen this directory (:mod:`~tms_bayes.inference.executor`)."""
        return {"kind": "truth-sweep", "settings": self.settings.to_dict()}

    def program_key(self) -> str:
        """Truth sweeps whose :meth:`runner` is the same compiled program: equal settings."""
        return json.dumps(self.settings.to_dict(), sort_keys=True)

    def prepare(self, log=print) -> list[tuple[int]]:
        """Start the directory, check its files (:meth:`verify`) and return the pending jobs (index,)."""
        self.rundir.start()
        self.verify(log)
        todo = self.pending()
        total = len(self.settings.values)
        if not todo:
            log(f"all {total} values of {self.out} are already finished")
        elif len(todo) < total:
            log(f"resuming {self.out}: {total - len(todo)} of {total} values already finished")
        return [(i,) for i in todo]

    def runner(self) -> "_TrialRunner":
        """The sweep's NUTS program (compiled on its first value, then reused)."""
        return _TrialRunner(self.settings)

    def run_job(self, index: int, runner, *, progress: bool = False, token: str | None = None) -> str:
        """Run the ``index``-th value with ``runner`` unless another writer has it (the claim protocol
        of :meth:`~tms_bayes.inference.sweep.Sweep.run_job`): "done", "held" or "finished"."""
        name = run_name(index)
        with self.rundir.claimed(name, token) as taken:
            if taken:
                return taken
            idata = runner.run_value(index, progress=progress)
            self.rundir.commit(name, {f"runs/{name}.nc": lambda path, idata=idata: write_netcdf(path, idata)})
            return "done"

    def run(self, progress: bool = True, log=print) -> "TruthSweep":
        """Run every pending value in this process; each finished value is written before the next
        starts (on a Dask cluster: :func:`tms_bayes.inference.executor.run_on_dask`; the same files)."""
        from tqdm.auto import tqdm

        todo = self.prepare(log)
        if not todo:
            return self
        runner = self.runner()
        bar = tqdm(
            total=len(todo),
            desc=f"relu {self.settings.experiment}",
            unit="value",
            disable=not progress,
            position=0,
        )
        try:
            for (i,) in todo:
                bar.set_postfix_str(f"{self.settings.parameter}={self.settings.values[i]:.4g}")
                self.statuses[run_name(i)] = self.run_job(i, runner, progress=progress)
                if self.statuses[run_name(i)] == "held":
                    log(f"{run_name(i)} is being run by another process; skipped here")
                bar.update(1)
        finally:
            bar.close()
            self.compilations = runner.compilations
            self.timings = dict(runner.timings)
        return self

    def verify(self, log=print) -> list[str]:
        """Check every value's run file (readable, holding its own index, value and settings): a bad one
        is set aside (kept) and redone by :meth:`run`, a complete unrecorded one adopted
        (:meth:`~tms_bayes.store.rundir.RunDir.verify`).  Returns the runs set aside."""
        units = {
            run_name(i): {f"runs/{run_name(i)}.nc": {"index": i, "value": float(v)}}
            for i, v in enumerate(self.settings.values)
        }
        bad = self.rundir.verify(units, log)
        self._loaded.clear()
        return bad

    def load(self, index: int) -> az.InferenceData:
        """The finished run of the ``index``-th value, read once and kept in memory."""
        name = run_name(index)
        if not self.rundir.done(name):
            raise ValueError(
                f"no finished run for {self.settings.parameter} = {self.settings.values[index]:.4g} "
                f"in {self.out}"
            )
        if name not in self._loaded:
            from .sweep import load_run

            self._loaded[name] = load_run(
                self.rundir.path(name),
                job={"index": index, "value": float(self.settings.values[index])},
                settings=self.settings.to_dict(),
            )
        return self._loaded[name]


def run_truth_sweep(settings: TruthSweepSettings, out, *, progress: bool = True, log=print) -> TruthSweep:
    """Run (or resume) the truth sweep ``settings`` into ``out``."""
    return TruthSweep(settings, out).run(progress=progress, log=log)


def load_truth_sweep(out) -> TruthSweep:
    """Open an existing truth-sweep directory without running anything."""
    settings = RunDir.existing_settings(out, "truth-sweep", "a ReLU truth-sweep directory (tms-bayes relu)")
    return TruthSweep(TruthSweepSettings.from_dict(settings), out)


class _TrialRunner:
    """One compiled NUTS program for the whole truth sweep; each job = the trials of one value."""

    def __init__(self, settings: TruthSweepSettings):
        from .._jax import jax
        from .compile import compile_model
        from .nuts import ChainSampler, NutsSettings

        self.jax = jax
        self.settings = settings
        t0 = time.perf_counter()
        model = build_trial_model(settings, 0, 0)
        self.cm = compile_model(model)
        self.dims = dict(model.named_vars_to_dims)
        self.coords = {k: np.asarray(v) for k, v in model.coords.items() if k in ("node", "input")}
        nuts = NutsSettings(
            tune=settings.tune,
            draws=settings.draws,
            chunk=min(50, settings.draws),
            target_accept=settings.target_accept,
            max_tree_depth=settings.max_tree_depth,
            chain_method=settings.chain_method,
        )
        self.sampler = ChainSampler(self.cm, nuts, settings.trials)
        # L_n of every draw of every chain, each chain on its own data
        self.loss = jax.jit(jax.vmap(jax.vmap(self.cm.loss, in_axes=(0, None)), in_axes=(0, 0)))
        self.graph_s = time.perf_counter() - t0

    @property
    def compilations(self) -> int:
        return self.sampler.compilations

    @property
    def timings(self) -> dict[str, float]:
        return {"compile_s": self.sampler.compile_s, "graph_s": self.graph_s}

    def run_value(self, index: int, progress: bool = True) -> az.InferenceData:
        from tqdm.auto import tqdm

        jax, jnp = self.jax, self.jax.numpy
        st = self.settings
        per_trial = [
            self.cm.with_data(**dict(zip(("X", "y"), trial_data(st, index, t))), beta=st.resolved_beta())
            for t in range(st.trials)
        ]
        stacked = {k: jnp.asarray(np.stack([d[k] for d in per_trial])) for k in per_trial[0]}
        rng = np.random.default_rng([st.seed_offset, index, 11])
        init = jnp.asarray(rng.uniform(-st.init_scale, st.init_scale, size=(st.trials, self.cm.dim)))
        key = jax.random.key(int(rng.integers(2**31)))
        value = st.values[index]
        bar = tqdm(
            total=st.tune + st.draws,
            desc=f"  {st.parameter}={value:.4g}",
            unit="step",
            leave=False,
            disable=not progress,
            position=1,
        )
        draws, elapsed = self.sampler.run(key, init, stacked, bar)
        bar.close()
        pos = draws["position"]
        posterior = {k: np.asarray(v) for k, v in self.cm.unravel(pos).items()}
        posterior["L_n"] = np.asarray(self.loss(jnp.asarray(pos), stacked))
        truth = experiment_truth(st.experiment, value)
        attrs = make_attrs(st.to_dict())
        attrs.update(
            {
                "experiment": st.experiment,
                "parameter": st.parameter,
                "value": value,
                "index": index,
                "n": st.n,
                "beta_used": st.resolved_beta(),
                "truth": truth.name,
                "truth_w": json.dumps(truth.w.tolist()),
                "truth_b": json.dumps(truth.b.tolist()),
                "truth_q": json.dumps(truth.q.tolist()),
                "truth_c": truth.c,
                "data_seeds": json.dumps([st.data_seed(index, t) for t in range(st.trials)]),
                "backend": "jax-blackjax",
                "jax_backend": jax.default_backend(),
                "sampling_time_s": elapsed,
            }
        )
        dims = {k: ["trial", *self.dims.get(k, ())] for k in posterior}
        stats = self.sampler.stats(draws)
        idata = az.from_dict(
            posterior={k: _on_trial_dim(v) for k, v in posterior.items()},
            sample_stats={k: _on_trial_dim(v) for k, v in stats.items()},
            coords={**self.coords, "trial": np.arange(st.trials)},
            dims={**dims, **{k: ["trial"] for k in stats}},
        )
        for g in idata.groups():
            getattr(idata, g).attrs.update(attrs)
        return idata


def _on_trial_dim(a) -> np.ndarray:
    """(trial, draw, ...) -> (chain = 1, draw, trial, ...)."""
    return np.moveaxis(np.asarray(a), 0, 1)[None]
