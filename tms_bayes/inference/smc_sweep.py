"""SMC across n for a sweep's model and datasets: the posterior-mass estimator beside the chains.

For every dataset seed of a :class:`~tms_bayes.inference.sweep.SweepSettings` (the same datasets the
NUTS sweep uses: N = max n rows per seed, D_n = the first n), one data-tempered SMC run
(:mod:`tms_bayes.inference.smc`) adds the rows in order and records at each grid n the weighted
particles and log Z_n.  The log density is the sweep's padded PyMC model compiled once.

On disk (``out/``): ``manifest.json`` (sweep and SMC settings, finished seeds), ``smc/n{n}_seed{s}.nc``
(InferenceData: posterior = the particles as one chain, sample_stats = ``log_weight``, attrs with
log Z_n, F_n and every setting), ``smc/stages_seed{s}.csv`` (the adaptive path: s, ESS, resampling,
HMC acceptance, step size) and ``evidence.csv`` (n, seed, log Z_n, F_n, the loss-convention F_n,
ESS, wall time).  Re-running resumes by seed; different settings are refused.

**Repeats.**  ``repeats = R`` adds R − 1 independent SMC runs on dataset seed 0 (fresh prior particles
and PRNG stream, :func:`run_seed`), stored as ``smc/n{n}_seed000_rep{r}.nc`` with
``evidence_repeats.csv``.  The spread over datasets mixes the data's randomness with the sampler's; the
spread over repeats on one dataset is the sampler's alone (Monte Carlo error), so the report gives both.

**Two conventions for F_n.**  ``F_n = −log Z_n`` of the model as written (Gaussian likelihood with its
normalising constants), and ``F_n_loss = −log ∫ φ(w) exp(−nβ L_n(w)/(2σ²)) dw``, the SPEC's
F_n = −log ∫ φ e^{−n L_n} when σ² = 1/2, β = 1.  They differ by the constant nβ·(c/2)·log(2πσ²).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from .. import _validate
from .smc import SMC_LEGACY, SMCSettings, mask_path, particles_idata, prior_particles, run_smc, smc_attrs
from ..store.atomic import write_netcdf, write_text
from ..store.netcdf import open_dataset
from ..store.rundir import RunDir, make_attrs
from .sweep import LEGACY, SweepSettings, build_model, dataset

__all__ = [
    "SMCSweep",
    "run_smc_sweep",
    "run_seed",
    "load_smc_sweep",
    "pymc_smc_reference",
    "pymc_log_evidence",
    "phase_minima",
]


def _name(n: int, seed: int, rep: int = 0) -> str:
    return f"n{n:06d}_seed{seed:03d}" + (f"_rep{rep:02d}" if rep else "")


def run_seed(data_seed: int, rep: int = 0) -> int:
    """The PRNG seed of SMC run ``rep`` on dataset ``data_seed``: the data seed itself for rep 0 (the
    sweep's run), an independent stream from ``SeedSequence([data_seed, rep])`` for the repeats."""
    return (
        int(data_seed)
        if rep == 0
        else int(np.random.SeedSequence([int(data_seed), int(rep)]).generate_state(1)[0])
    )


class SMCSweep:
    """An SMC-across-n directory (module docstring)."""

    def __init__(self, sweep_settings: SweepSettings, smc_settings: SMCSettings, out, *, repeats: int = 1):
        if sweep_settings.beta_depends_on_n():
            raise ValueError(
                f"SMC across n needs a β that does not change with n; β = {sweep_settings.beta or '1/log n'} "
                "does — set a number"
            )
        self.sweep_settings = sweep_settings
        self.settings = smc_settings
        self.out = Path(out)
        legacy = {"sweep": LEGACY, "smc": SMC_LEGACY}
        self.rundir = RunDir(out, "smc", self._settings_dict(), "an SMC run", legacy=legacy)
        self._loaded: dict[str, az.InferenceData] = {}
        self._evidence: dict[tuple[int, int], list[dict]] = {}  # rows read from a finished run's files
        self.statuses: dict[str, str] = {}  # what this run did with each SMC run ("done", "held", …)
        self.compilations, self.timings = 0, {}
        self.repeats = max(
            _validate.integer("repeats", repeats, minimum=1), 1 + max(self.repeats_completed, default=0)
        )

    @staticmethod
    def _key(seed: int, rep: int = 0) -> str:
        return f"seed{seed:03d}" + (f"_rep{rep:02d}" if rep else "")

    @property
    def completed(self) -> list[int]:
        """Dataset seeds whose SMC run (rep 0) is finished."""
        return [s for s in range(self.sweep_settings.seeds) if self.rundir.done(self._key(s))]

    @property
    def repeats_completed(self) -> list[int]:
        """Finished independent repeats r ≥ 1 on dataset seed 0 (module docstring)."""
        return sorted(
            int(k.rsplit("_rep", 1)[1]) for k in self.rundir.completed if k.startswith("seed000_rep")
        )

    def _settings_dict(self) -> dict:
        return {"sweep": self.sweep_settings.to_dict(), "smc": self.settings.to_dict()}

    def dataset(self, seed: int) -> dict:
        """The full dataset (N = max n rows) of dataset seed ``seed``: D_n is its first n rows."""
        return dataset(self.sweep_settings, seed)

    @property
    def seeds(self) -> list[int]:
        return list(range(self.sweep_settings.seeds))

    def name(self, seed: int, rep: int = 0) -> str:
        """The key of SMC run (dataset seed index ``seed``, repeat ``rep``)."""
        return self._key(seed, rep)

    def spec(self) -> dict:
        """What a cluster worker needs to reopen this directory (:mod:`~tms_bayes.inference.executor`)."""
        return {"kind": "smc", "settings": self._settings_dict(), "repeats": self.repeats}

    def program_key(self) -> str:
        """Runs whose :meth:`runner` is the same compiled program: equal settings."""
        return json.dumps(self._settings_dict(), sort_keys=True)

    def prepare(self, log=print) -> list[tuple[int, int]]:
        """Start the directory, check its files (:meth:`verify`) and return the unfinished runs (seed,
        repeat): one per dataset seed, then the repeats on seed 0."""
        self.rundir.start()
        self.verify(log)
        todo = [(s, 0) for s in self.seeds if s not in self.completed]
        todo += [(0, r) for r in range(1, self.repeats) if r not in self.repeats_completed]
        total = len(self.seeds) + self.repeats - 1
        if not todo:
            log(f"all {total} SMC runs of {self.out} are already finished")
        elif len(todo) < total:
            log(f"resuming {self.out}: {total - len(todo)} of {total} SMC runs already finished")
        return todo

    def runner(self) -> "_UnitRunner":
        """The sweep's padded model compiled to a JAX log density (once; its data are arguments)."""
        from .compile import compile_model

        st = self.sweep_settings
        t0 = time.perf_counter()
        model = build_model(st, dataset(st, 0), st.n_max)
        unit = _UnitRunner(self, model, compile_model(model))
        unit.timings["compile_s"] = time.perf_counter() - t0
        return unit

    def run_job(
        self, s: int, r: int, runner, *, progress: bool = False, token: str | None = None, log=print
    ) -> str:
        """Run SMC (seed ``s``, repeat ``r``) with ``runner`` (:meth:`runner`) unless another writer has it
        (the claim protocol of :meth:`~tms_bayes.inference.sweep.Sweep.run_job`): "done", "held" or
        "finished"."""
        key = self._key(s, r)
        with self.rundir.claimed(key, token) as taken:
            if taken:
                return taken
            wall, stages = runner.run(s, r, progress, out=self.out)
            self.rundir.record(key, [f"smc/{_name(n, s, r)}.nc" for n in self.sweep_settings.n])
            log(f"seed {s}" + (f" repeat {r}" if r else "") + f": {stages} SMC stages in {wall:.1f} s")
            return "done"

    def run(self, progress: bool = True, log=print) -> "SMCSweep":
        """Run every unfinished unit in this process: one SMC run per dataset seed, then the repeats on
        seed 0 (on a Dask cluster: :func:`tms_bayes.inference.executor.run_on_dask`; the same files)."""
        todo = self.prepare(log)
        if todo:
            runner = self.runner()
            for s, r in todo:
                self.statuses[self._key(s, r)] = status = self.run_job(
                    s, r, runner, progress=progress, log=log
                )
                if status == "held":
                    log(f"{self._key(s, r)} is being run by another process; skipped here")
                self.write_evidence()  # after every run: a kill loses no finished row
            self.compilations, self.timings = runner.compilations, dict(runner.timings)
        else:
            self.write_evidence()  # nothing to run: rebuild the tables (one may have been deleted)
        return self

    def write_evidence(self) -> None:
        """Rebuild ``evidence.csv`` (rep 0) and ``evidence_repeats.csv`` (r ≥ 1) from the attrs of every
        finished run file: derived tables, so a kill between a run and its rows, or a deleted table,
        loses nothing (columns n, seed, [rep], log_evidence, F_n, F_n_loss, ess, wall_time_s)."""
        for repeats, keys in (
            (False, [(s, 0) for s in self.completed]),
            (True, [(0, r) for r in self.repeats_completed]),
        ):
            rows = []
            for s, r in keys:
                if (s, r) not in self._evidence:  # each finished run's files are read once per process
                    self._evidence[s, r] = []
                    for i, n in enumerate(self.sweep_settings.n):
                        with open_dataset(self.rundir.path(self._key(s, r), i), group="posterior") as ds:
                            a = ds.attrs
                            self._evidence[s, r].append(
                                {"n": n, "seed": s, **({"rep": r} if r else {}),
                                 "log_evidence": a["log_evidence"], "F_n": a["free_energy"],
                                 "F_n_loss": a["free_energy_loss"], "ess": a["ess"],
                                 "wall_time_s": a["wall_time_s"]}
                            )  # fmt: skip
                rows += self._evidence[s, r]
            if rows:
                order = ["rep", "seed", "n"] if repeats else ["seed", "n"]
                table = pd.DataFrame(rows).sort_values(order).to_csv(index=False)
                write_text(self.out / ("evidence_repeats.csv" if repeats else "evidence.csv"), table)

    def verify(self, log=print) -> list[str]:
        """Check every SMC run's files (readable, each holding its own n, seed, repeat and settings):
        a run with a bad file is set aside (kept) and redone by :meth:`run`, a complete unrecorded one
        adopted (:meth:`~tms_bayes.store.rundir.RunDir.verify`).  Returns the runs set aside."""
        units = {
            self._key(s, r): {
                f"smc/{_name(n, s, r)}.nc": {"n": n, "seed": s, "rep": r} for n in self.sweep_settings.n
            }
            for s, r in [(s, 0) for s in self.seeds] + [(0, r) for r in range(1, self.repeats)]
        }
        bad = self.rundir.verify(units, log, settings=self.sweep_settings.to_dict())
        self._loaded.clear()
        self._evidence.clear()
        return bad

    def load(self, n: int, seed: int, rep: int = 0) -> az.InferenceData:
        name = _name(n, seed, rep)
        if (rep == 0 and seed not in self.completed) or (
            rep > 0 and (seed != 0 or rep not in self.repeats_completed)
        ):
            raise ValueError(
                f"SMC seed {seed}" + (f" repeat {rep}" if rep else "") + f" is not finished in {self.out}"
            )
        if name not in self._loaded:
            from .sweep import load_run

            self._loaded[name] = load_run(
                self.rundir.path(self._key(seed, rep), list(self.sweep_settings.n).index(n)),
                job={"n": n, "seed": seed, "rep": rep},
                settings=self.sweep_settings.to_dict(),
            )
        return self._loaded[name]

    def evidence(self, repeats: bool = False) -> pd.DataFrame:
        """``evidence.csv`` (one row per n and dataset seed); ``repeats=True``: ``evidence_repeats.csv``
        (the independent runs r ≥ 1 on seed 0)."""
        return pd.read_csv(self.out / ("evidence_repeats.csv" if repeats else "evidence.csv"))


class _UnitRunner:
    """One SMC run (dataset seed, repeat) of an :class:`SMCSweep`, written to disk as it finishes."""

    def __init__(self, sweep: SMCSweep, model, cm):
        self.sweep, self.model, self.cm = sweep, model, cm
        self.dims = dict(model.named_vars_to_dims)
        self.coords = {k: np.asarray(v) for k, v in model.coords.items() if k != "obs"}
        self.logp_const = _likelihood_constant(sweep.sweep_settings)
        self.compilations, self.timings = 1, {}

    def run(self, s: int, r: int, progress: bool, out) -> tuple[float, int]:
        """SMC run (seed ``s``, repeat ``r``), its files written into ``out``; (wall time, stages)."""
        from .._jax import jax, jnp

        sw, st, cm = self.sweep, self.sweep.sweep_settings, self.cm
        out = Path(out)
        prng = run_seed(st.seed_offset + s, r)
        data = cm.with_data(**dataset(st, s), beta=st.beta_for(st.n_max))
        x0 = prior_particles(self.model, cm, sw.settings.particles, seed=prng)
        res = run_smc(
            cm,
            mask_path(data),
            st.n,
            x0,
            settings=sw.settings,
            seed=prng,
            progress=progress,
            desc=f"smc seed {s}" + (f" rep {r}" if r else ""),
        )
        ess_all = res.ess()
        for i, n in enumerate(st.n):
            dn = {k: jnp.asarray(v) for k, v in data.items()}
            dn["mask"] = jnp.asarray((np.arange(st.n_max) < n).astype(float))
            part = res.particles[i]
            post = {k: v[None] for k, v in cm.points(part, dn).items()}  # W, b, …, L_n
            F = -float(res.log_evidence[i])
            F_loss = F + n * self.logp_const  # F_n − n·β·const  (module docstring)
            attrs = make_attrs(
                st.to_dict(),
                n=n,
                seed=s,
                rep=r,
                smc_seed=prng,
                data_seed=st.seed_offset + s,
                log_evidence=float(res.log_evidence[i]),
                free_energy=F,
                free_energy_loss=F_loss,
                ess=float(ess_all[i]),
                wall_time_s=res.wall_time_s,
                **smc_attrs(sw.settings),
                jax_backend=jax.default_backend(),
            )
            idata = particles_idata(post, res.log_weights[i], self.coords, self.dims, attrs)
            write_netcdf(out / "smc" / f"{_name(n, s, r)}.nc", idata)
        write_text(
            out / "smc" / (f"stages_seed{s:03d}" + (f"_rep{r:02d}" if r else "") + ".csv"),
            pd.DataFrame(res.stages).to_csv(index=False),
        )
        return res.wall_time_s, len(res.stages["s"])


def _likelihood_constant(st: SweepSettings) -> float:
    """−β·(m/2)·log(2πσ²), the per-row normalising constant of the Gaussian likelihood with m outputs
    per row (c for TMS, 1 for ReLU); F_loss = F + n·constant."""
    outputs = st.c if st.model == "tms" else 1
    return -st.beta_for(st.n_max) * 0.5 * outputs * math.log(2 * math.pi * st.resolved_sigma() ** 2)


def run_smc_sweep(
    sweep_settings: SweepSettings,
    smc_settings: SMCSettings,
    out,
    *,
    repeats: int = 1,
    progress: bool = True,
    log=print,
) -> SMCSweep:
    """Run (or resume) SMC across the grid of ``sweep_settings`` for each of its seeds, and
    ``repeats − 1`` further independent runs on dataset seed 0 (the Monte Carlo spread of one dataset,
    reported apart from the spread over datasets)."""
    return SMCSweep(sweep_settings, smc_settings, out, repeats=repeats).run(progress=progress, log=log)


def load_smc_sweep(out) -> SMCSweep:
    """Open an existing SMC directory without running anything."""
    s = RunDir.existing_settings(out, "smc", "an SMC directory (tms-bayes smc)")
    return SMCSweep(
        SweepSettings.from_dict(s["sweep"]), SMCSettings(**s["smc"]), out
    )  # repeats: those on disk


def phase_minima(smc: SMCSweep, labels, phases, *, progress: bool = True):
    """L_n at the local minimum of each phase on each D_n: an xarray DataArray (n, seed, phase).

    From the phase's lowest-L_n particle, BFGS (exact JAX gradients of the sweep's padded model,
    compiled once; the mask selects D_n) descends to the nearest local minimum ŵ_α of L_n *kept inside
    the phase* (:func:`tms_bayes.inference.minimise.minimise_in_phase`): a descent that would leave the
    phase stops at its last point inside, and is counted in the attribute ``left_phase``.  NaN where the
    phase has no particle."""
    import xarray as xr
    from tqdm.auto import tqdm

    from .._jax import jax, jnp
    from .compile import compile_model, ravel_point
    from .minimise import minimise_in_phase, tms_phase_indicator

    st = smc.sweep_settings
    cm = compile_model(build_model(st, dataset(st, int(labels.seed.values[0])), st.n_max))
    inside = {p: tms_phase_indicator(cm, p) for p in phases}
    f = jax.jit(jax.value_and_grad(cm.loss))
    out = np.full((labels.sizes["n"], labels.sizes["seed"], len(phases)), np.nan)
    left = 0
    bar = tqdm(total=out.size, desc="phase minima", unit="fit", disable=not progress, leave=False)
    for j, s in enumerate(labels.seed.values):
        base = cm.with_data(**dataset(st, int(s)), beta=st.beta_for(st.n_max))
        for i, n in enumerate(labels.n.values):
            data = {k: jnp.asarray(v) for k, v in base.items()}
            data["mask"] = jnp.asarray((np.arange(st.n_max) < n).astype(float))
            post = smc.load(int(n), int(s)).posterior
            for a, p in enumerate(phases):
                bar.update(1)
                here = labels.label.values[i, j] == p
                if not here.any():
                    continue
                k = int(np.argmin(np.where(here, labels.L_n.values[i, j], np.inf)))
                w0 = ravel_point(cm, {name: post[name].values[0, k] for name in cm.rv_names})
                _, value, info = minimise_in_phase(f, w0, inside[p], args=(data,))
                left += int(info["left_phase"])
                out[i, j, a] = min(value, float(labels.L_n.values[i, j, k]))
    bar.close()
    return xr.DataArray(
        out,
        dims=("n", "seed", "phase"),
        coords={"n": labels.n.values, "seed": labels.seed.values, "phase": list(phases)},
        name="L_n_min",
        attrs={
            "method": "BFGS from the phase's lowest-L_n particle to the nearest local minimum of L_n on D_n, "
            "kept inside the phase",
            "left_phase": left,
        },
    )


def pymc_log_evidence(
    model, *, draws: int = 2000, chains: int = 2, random_seed: int = 0, progress: bool = False
) -> dict:
    """PyMC's own likelihood-tempered ``pm.sample_smc`` on ``model``: log marginal likelihood per
    chain, their mean, the wall time and the InferenceData."""
    import pymc as pm

    draws = _validate.integer("draws", draws, minimum=10)
    chains = _validate.integer("chains", chains, minimum=1)
    t0 = time.perf_counter()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample_smc(
            draws=draws,
            chains=chains,
            cores=1,
            random_seed=random_seed,
            progressbar=progress,
            compute_convergence_checks=False,
        )
    # PyMC stores, per chain, the running log ML over stages (NaN until the last); the layout of the
    # array (chain, draw) of lists or of floats differs between versions: take each chain's last finite value
    per_chain = []
    for item in np.asarray(idata.sample_stats["log_marginal_likelihood"].values, dtype=object).ravel():
        vals = np.asarray(item, dtype=float).ravel()
        vals = vals[np.isfinite(vals)]
        if vals.size:
            per_chain.append(float(vals[-1]))
    per_chain = np.array(per_chain)
    return {
        "log_evidence": per_chain,
        "mean": float(per_chain.mean()),
        "wall_time_s": time.perf_counter() - t0,
        "idata": idata,
    }


def pymc_smc_reference(sweep_settings: SweepSettings, seed: int, n: int, **kwargs) -> dict:
    """:func:`pymc_log_evidence` on the sweep's D_n for ``seed`` (the reference for
    :func:`run_smc_sweep` on the same data)."""
    n = _validate.integer("n", n, minimum=1)
    model = build_model(sweep_settings, dataset(sweep_settings, seed), n, padded=False)
    return {"n": n, "seed": seed, **pymc_log_evidence(model, **kwargs)}
