"""Posterior mass per ReLU phase by SMC, on the truth sweep's own datasets (SPEC 5; issue "ReLU
transitions checked two ways").

A truth sweep's trials are single NUTS chains: their phase shares are *chain* shares, which equal the
posterior's only when chains cross between phases.  This run measures the posterior mass directly:
for chosen truth values, on the datasets of the sweep's first ``smc_datasets`` trials (regenerated from
their seeds: :func:`tms_bayes.inference.truth_sweep.trial_data`), data-tempered SMC
(:func:`tms_bayes.inference.smc.run_smc`, the padding mask admitting rows one by one) is run from the
prior to the tempered posterior at β = 1/log n on all n rows, ``smc_repeats`` times with independent
seeds.  The weighted particles are the posterior; a phase's mass is the weight of the particles
labelled with it (:mod:`tms_bayes.analysis.relu_phases`).  Spread over datasets is the sampling
variability of the posterior itself; spread over repeats is the SMC error.

On disk (``out/``, kind "relu-smc"): ``manifest.json`` (the truth sweep's settings, the SMC settings,
values, datasets, repeats) and ``smc/v{index}-t{trial}-r{rep}.nc``, one InferenceData per SMC run
(posterior: w, b, q, c, L_n over (chain = 1, draw = particle); sample_stats: log_weight; attrs: value,
index, trial, rep, data seed, SMC seed, log Z, stages, acceptance, wall time).  Resumable; the same job
protocol as every run directory, so ``--executor dask`` spreads the runs over a cluster.
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
from ..store.atomic import write_netcdf
from ..store.rundir import RunDir, make_attrs
from .smc import SMCSettings, mask_path, particles_idata, prior_particles, run_smc, smc_attrs
from .truth_sweep import TruthSweepSettings, build_trial_model, on_grid, trial_data

__all__ = ["ReluSMCSettings", "ReluSMC", "from_settings", "load_relu_smc", "SMC_VALUES"]

#: the named subsets of the issue: PT1 θ ∈ {1.1, 1.26, π/2}; PT2 ϑ ∈ {1.0, 2.0, 2.25}
SMC_VALUES = {"pt1": (1.1, 1.26, math.pi / 2), "pt2": (1.0, 2.0, 2.25)}


def _values(text: str):
    return () if text.strip().lower() == "none" else parse_values(text, "--smc-values")


@dataclass(frozen=True)
class ReluSMCSettings:
    """Which SMC runs measure the posterior mass per phase (module docstring)."""

    smc_values: tuple[float, ...] | None = setting(
        None,
        "truth values for SMC posterior mass per phase, or 'none'",
        parse=_values,
        show="pt1: 1.1,1.26,pi/2; pt2: 1.0,2.0,2.25 (those on the grid)",
    )
    smc_datasets: int | None = setting(
        None,
        "SMC: datasets per value (those of the sweep's first trials)",
        parse=int,
        show="3, at most --trials",
    )
    smc_repeats: int = setting(2, "SMC: independent runs per dataset")
    smc_particles: int = setting(256, "SMC particles per run")
    smc_mcmc_steps: int = setting(5, "SMC: HMC moves per stage")

    def __post_init__(self):
        if self.smc_values is not None:  # sorted, each once: the transition is interpolated along them
            object.__setattr__(self, "smc_values", tuple(sorted({float(v) for v in self.smc_values})))
        if self.smc_datasets is not None:
            _validate.integer("smc_datasets", self.smc_datasets, minimum=1)
        _validate.integer("smc_repeats", self.smc_repeats, minimum=1)
        self.smc()

    def resolved_values(self, experiment: str, grid=None) -> tuple[float, ...]:
        """The SMC values: those given, or the named subset (:data:`SMC_VALUES`) — restricted to the
        sweep's ``grid`` when one is given (a default value the sweep lacks is skipped)."""
        if self.smc_values is not None:
            return self.smc_values
        if grid is None:
            return SMC_VALUES[experiment]
        return tuple(v for v in SMC_VALUES[experiment] if on_grid(v, grid))

    def datasets(self, trials: int) -> int:
        """Datasets per value: those given, else 3 (or all the sweep's ``trials`` when fewer)."""
        return min(3, trials) if self.smc_datasets is None else self.smc_datasets

    def smc(self) -> SMCSettings:
        return SMCSettings(particles=self.smc_particles, mcmc_steps=self.smc_mcmc_steps)


def _name(index: int, trial: int, rep: int) -> str:
    return f"v{index:03d}-t{trial}-r{rep}"


class ReluSMC:
    """A ReLU SMC directory: posterior mass per phase on a truth sweep's datasets (module docstring)."""

    def __init__(self, truth: TruthSweepSettings, settings: ReluSMCSettings, out):
        self.truth = truth
        self.settings = settings
        self.values = settings.resolved_values(truth.experiment, truth.values)
        self.indices = []
        for v in self.values:
            j = int(np.argmin([abs(v - x) for x in truth.values]))
            if abs(truth.values[j] - v) > 1e-9 * max(1.0, abs(v)):
                raise ValueError(
                    f"--smc-values must be values of the sweep; {v:g} is not in it "
                    f"({', '.join(f'{x:.4g}' for x in truth.values)})"
                )
            self.indices.append(j)
        self.datasets = settings.datasets(truth.trials)
        if self.datasets > truth.trials:
            raise ValueError(
                f"--smc-datasets must be at most the sweep's trials ({truth.trials}): "
                "SMC runs on their datasets"
            )
        self.out = Path(out)
        self.rundir = RunDir(out, "relu-smc", self._settings_dict(), "a ReLU SMC run")
        self.statuses: dict[str, str] = {}
        self.compilations, self.timings = 0, {}
        self._loaded: dict[str, az.InferenceData] = {}

    def _settings_dict(self) -> dict:
        return {
            "truth": self.truth.to_dict(),
            "relu_smc": {**asdict(self.settings), "smc_values": list(self.values)},
            "smc": self.settings.smc().to_dict(),
        }

    def jobs(self) -> list[tuple[int, int, int]]:
        return [
            (i, t, r)
            for i in self.indices
            for t in range(self.datasets)
            for r in range(self.settings.smc_repeats)
        ]

    def name(self, index: int, trial: int, rep: int) -> str:
        return _name(index, trial, rep)

    def spec(self) -> dict:
        """What a cluster worker needs to reopen this directory (:mod:`~tms_bayes.inference.executor`)."""
        return {"kind": "relu-smc", "settings": self._settings_dict()}

    def program_key(self) -> str:
        return json.dumps(self._settings_dict(), sort_keys=True)

    def finished(self) -> list[tuple[int, int, int]]:
        return [j for j in self.jobs() if self.rundir.done(_name(*j))]

    def prepare(self, log=print) -> list[tuple[int, int, int]]:
        """Start the directory, check its files and return the unfinished runs (index, trial, rep)."""
        self.rundir.start()
        self.verify(log)
        todo = [j for j in self.jobs() if not self.rundir.done(_name(*j))]
        total = len(self.jobs())
        if not todo:
            log(f"all {total} SMC runs of {self.out} are already finished")
        elif len(todo) < total:
            log(f"resuming {self.out}: {total - len(todo)} of {total} SMC runs already finished")
        return todo

    def verify(self, log=print) -> list[str]:
        units = {
            _name(i, t, r): {
                f"smc/{_name(i, t, r)}.nc": {
                    "index": i,
                    "trial": t,
                    "rep": r,
                    "value": self.truth.values[i],
                    "data_seed": self.truth.data_seed(i, t),
                    **{f"smc_{k}": v for k, v in self.settings.smc().to_dict().items()},
                }
            }
            for i, t, r in self.jobs()
        }
        bad = self.rundir.verify(units, log, settings=self.truth.to_dict())
        self._loaded.clear()
        return bad

    def runner(self) -> "_SMCRunner":
        return _SMCRunner(self)

    def run_job(self, index: int, trial: int, rep: int, runner, *, progress: bool = False, token=None) -> str:
        """One SMC run unless another writer has it (the claim protocol of every run directory)."""
        key = _name(index, trial, rep)
        with self.rundir.claimed(key, token) as taken:
            if taken:
                return taken
            idata = runner.run(index, trial, rep, progress=progress)
            self.rundir.commit(key, {f"smc/{key}.nc": lambda path, idata=idata: write_netcdf(path, idata)})
            return "done"

    def run(self, progress: bool = True, log=print) -> "ReluSMC":
        """Run every unfinished SMC run in this process, each written before the next starts."""
        from tqdm.auto import tqdm

        todo = self.prepare(log)
        if not todo:
            return self
        runner = self.runner()
        bar = tqdm(total=len(todo), desc=f"smc {self.truth.experiment}", unit="run", disable=not progress)
        try:
            for job in todo:
                i, t, r = job
                bar.set_postfix_str(f"{self.truth.parameter}={self.truth.values[i]:.4g} dataset {t} rep {r}")
                self.statuses[_name(*job)] = status = self.run_job(*job, runner, progress=progress)
                if status == "held":
                    log(f"{_name(*job)} is being run by another process; skipped here")
                bar.update(1)
        finally:
            bar.close()
            self.compilations, self.timings = runner.compilations, dict(runner.timings)
        return self

    def load(self, index: int, trial: int, rep: int) -> az.InferenceData:
        """The finished SMC run (index, trial, rep), read once."""
        from .sweep import load_run

        key = _name(index, trial, rep)
        if not self.rundir.done(key):
            raise ValueError(f"SMC run {key} is not finished in {self.out}")
        if key not in self._loaded:
            self._loaded[key] = load_run(
                self.rundir.path(key),
                job={"index": index, "trial": trial, "rep": rep},
                settings=self.truth.to_dict(),
            )
        return self._loaded[key]


class _SMCRunner:
    """The trial model compiled once; each job sets its dataset (data are arguments)."""

    def __init__(self, run: ReluSMC):
        from .._jax import jax
        from .compile import compile_model

        t0 = time.perf_counter()
        self.run_dir = run
        self.model = build_trial_model(run.truth, 0, 0)
        self.cm = compile_model(self.model)
        self.loss = jax.jit(jax.vmap(self.cm.loss, in_axes=(0, None)))
        self.dims = dict(self.model.named_vars_to_dims)
        self.coords = {k: np.asarray(v) for k, v in self.model.coords.items() if k in ("node", "input")}
        self.compilations = 1
        self.timings = {"compile_s": time.perf_counter() - t0}

    def run(self, index: int, trial: int, rep: int, *, progress: bool = False) -> az.InferenceData:
        from .._jax import jax, jnp

        rd, st = self.run_dir, self.run_dir.truth
        X, y = trial_data(st, index, trial)
        data = self.cm.with_data(X=X, y=y, beta=st.resolved_beta())
        data_seed = st.data_seed(index, trial)
        seed = int(np.random.SeedSequence([data_seed, rep, 29]).generate_state(1)[0] % 2**31)
        x0 = prior_particles(self.model, self.cm, rd.settings.smc_particles, seed=seed)
        res = run_smc(
            self.cm,
            mask_path(data),
            [st.n],
            x0,
            settings=rd.settings.smc(),
            seed=seed,
            progress=progress,
            desc=f"  smc dataset {trial} rep {rep}",
        )
        part = res.particles[-1]
        post = {k: np.asarray(v)[None] for k, v in self.cm.unravel(part).items()}
        post["L_n"] = np.asarray(self.loss(jnp.asarray(part), {k: jnp.asarray(v) for k, v in data.items()}))[
            None
        ]
        attrs = make_attrs(
            st.to_dict(),
            experiment=st.experiment,
            parameter=st.parameter,
            value=float(st.values[index]),
            index=index,
            trial=trial,
            rep=rep,
            data_seed=data_seed,
            smc_seed=seed,
            n=st.n,
            beta_used=st.resolved_beta(),
            log_evidence=float(res.log_evidence[-1]),
            ess=float(res.ess()[-1]),
            stages=len(res.stages["s"]),
            acceptance=float(np.nanmean(res.stages["acceptance"])) if len(res.stages["s"]) else math.nan,
            wall_time_s=res.wall_time_s,
            **smc_attrs(rd.settings.smc()),
            jax_backend=jax.default_backend(),
        )

        return particles_idata(post, res.log_weights[-1], self.coords, self.dims, attrs)


def from_settings(settings: dict, out) -> ReluSMC:
    """The ReLU SMC directory ``out`` with the recorded ``settings`` (its manifest's, or a spec's)."""
    rs = dict(settings["relu_smc"])
    rs["smc_values"] = tuple(rs["smc_values"])
    return ReluSMC(TruthSweepSettings.from_dict(settings["truth"]), ReluSMCSettings(**rs), out)


def load_relu_smc(out) -> ReluSMC:
    """Open an existing ReLU SMC directory without running anything."""
    return from_settings(
        RunDir.existing_settings(out, "relu-smc", "a ReLU SMC directory (tms-bayes relu --smc-values …)"), out
    )
