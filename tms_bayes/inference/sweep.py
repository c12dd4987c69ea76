"""Posterior sweeps over n: every (n, seed) job of a sweep through one compiled NUTS program.

A job is one sample size n and one dataset seed, with ``chains`` chains.  For each seed one dataset
of N = max(n) rows is drawn; D_n is its first n rows (a padding mask selects them), so a larger n adds
data to a smaller one and every job has the same array shapes: the JAX programs are compiled once
per sweep.

On disk (``out/``):

- ``manifest.json``: the settings and the finished jobs (rewritten atomically after each job);
- ``runs/n{n}_seed{d}.nc``: one ArviZ InferenceData per job, named by its dataset seed d =
  seed_offset + s (posterior, sample_stats, log_likelihood = ℓ_k = log p(x_k | w) of the n rows of
  D_n, untempered, in float32 — ample for WAIC/LOO/WBIC, whose Monte Carlo error is far larger —
  observed_data = D_n, attrs with n, the dataset seed, every setting of the job and the package
  version).  A job's file depends only on n, its dataset seed and the job settings — not on which
  seeds the sweep covers (``seeds``, ``seed_offset``: :data:`JOB_RANGE`) — so sweeps run apart over
  different seeds merge into one (``tms-bayes merge``, :mod:`tms_bayes.experiments.merge`);
- ``diagnostics.csv`` (written by :func:`tms_bayes.experiments.posterior_sweep.run` and the CLI, not
  here): the invariant-quantity diagnostics, a table derived from the run files and rebuilt from all
  of them after every run, so it can never miss a job.

Re-running the same sweep into the same directory skips finished jobs; a sweep with different
settings is refused.  An interruption loses at most the jobs in flight (one per sampling thread,
:meth:`Sweep.run`).
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import arviz as az
import numpy as np

from .. import _validate
from .._options import CHAIN_METHODS, GAUGES, MASS_MATRICES, setting
from .._parse import log_beta_factor, parse_beta, parse_sizes
from ..store.atomic import write_netcdf
from ..store import netcdf
from ..store.netcdf import read_inference_data
from ..store.rundir import RunDir, make_attrs, run_mismatch, with_legacy

__all__ = ["SweepSettings", "Sweep", "run_sweep", "load_run", "load_sweep", "run_model", "MODELS", "BACKENDS"]

MODELS = ("tms", "relu-pt1", "relu-pt2")
BACKENDS = ("jax", "pymc")
#: size ceilings (``_validate.ceiling``; lifted by ``--force`` / ``tms_bayes.no_ceilings()``)
MAX_N, MAX_JOBS, MAX_CHAINS, MAX_TRANSITIONS = 1_000_000, 1000, 1024, 10_000_000
#: the settings that choose which dataset seeds a sweep covers, not what any job computes
JOB_RANGE = ("seeds", "seed_offset")
#: settings added after sweeps were first written, with what a manifest without them ran: the unfixed
#: model and a diagonal mass matrix
LEGACY = {"gauge": "none", "mass_matrix": "diag"}
#: the manifest's mark of a sweep whose run files are named by dataset seed (every sweep started since
#: run-directory format 2 gained it; older ones were named by seed index, which differs only where
#: seed_offset > 0)
_NAMES = {"run_names": "data_seed"}


@dataclass(frozen=True)
class SweepSettings:
    """Every setting of a sweep; two sweeps with equal settings produce the same results."""

    model: str = setting("tms", "model", choices=MODELS)
    n: tuple[int, ...] = setting(
        tuple(range(100, 1201, 100)),
        "sample sizes, start:stop:step inclusive or a comma list",
        parse=parse_sizes,
        show="100:1200:100",
    )
    seeds: int = setting(4, "datasets, one per seed")
    chains: int = setting(4, "chains per (n, seed)")
    tune: int = setting(300, "warm-up transitions per chain")
    draws: int = setting(300, "kept transitions per chain")
    backend: str = setting("jax", "jax: compile-once blackjax NUTS; pymc: PyMC's pm.sample", choices=BACKENDS)
    chain_method: str = setting(
        "sequential",
        "sequential/vectorized: NUTS chains by lax.map or vmap; chees: ChEES-adapted HMC across many "
        "chains (accelerators; inference.nuts)",
        choices=CHAIN_METHODS,
    )
    max_tree_depth: int = setting(10, "NUTS maximum tree depth")
    mass_matrix: str = setting(
        "diag", "NUTS inverse mass matrix adapted in warm-up: diagonal or dense", choices=MASS_MATRICES
    )
    gauge: str | None = setting(
        None,
        "TMS: so2 samples W in the rotation gauge (exact for every invariant; models.tms.tms_model), "
        "none samples W's entries",
        choices=GAUGES,
        show="so2 for TMS with r = 2, else none",
    )
    target_accept: float = setting(0.8, "NUTS target acceptance rate")
    prior_std: float = setting(1.0, "prior std of every parameter")
    # TMS
    c: int = setting(6, "TMS: features c")
    r: int = setting(2, "TMS: hidden dimension r")
    sigma: float | None = setting(None, "likelihood std σ", parse=float, show="√½ for TMS, 1 for ReLU")
    beta: float | str | None = setting(
        None,
        "likelihood tempering β: a number or 'a/log n' (e.g. 1/log-n, WBIC's)",
        parse=parse_beta,
        show="1 for TMS, 1/log n for ReLU",
    )
    # ReLU
    theta: float = setting(1.26, "relu-pt1: truth angle θ")
    vartheta: float = setting(1.5, "relu-pt2: output weight ϑ of the (-1,0) node", flag="--q-scale")
    d: int | None = setting(None, "ReLU: model nodes", parse=int, show="2 for pt1, 3 for pt2")
    seed_offset: int = setting(0, "first dataset seed")

    def __post_init__(self):
        _validate.choice("model", self.model, MODELS)
        _validate.choice("backend", self.backend, BACKENDS)
        n = tuple(int(_validate.integer("n", v, minimum=1)) for v in np.atleast_1d(self.n))
        if len(n) == 0:
            raise ValueError("n must list at least one sample size")
        if len(set(n)) != len(n):
            raise ValueError(f"n must not repeat a value, got {list(n)}")
        object.__setattr__(self, "n", tuple(sorted(n)))
        _validate.integer("seeds", self.seeds, minimum=1)
        _validate.integer("chains", self.chains, minimum=1)
        _validate.ceiling("n", max(n), MAX_N)
        _validate.ceiling("the number of sample sizes", len(n), MAX_JOBS)
        _validate.ceiling("seeds", self.seeds, MAX_JOBS)
        _validate.ceiling("chains", self.chains, MAX_CHAINS)
        _validate.ceiling(
            "chains × (tune + draws)", self.chains * (int(self.tune) + int(self.draws)), MAX_TRANSITIONS
        )
        _validate.integer("seed_offset", self.seed_offset, minimum=0)
        _validate.positive("prior_std", self.prior_std)
        if self.model == "tms":
            _validate.integer("c", self.c, minimum=1)
            _validate.integer("r", self.r, minimum=1)
        if self.sigma is not None:
            _validate.positive("sigma", self.sigma)
        _validate.choice("mass_matrix", self.mass_matrix, MASS_MATRICES)
        _validate.choice("chain_method", self.chain_method, CHAIN_METHODS)
        if self.backend == "pymc" and (self.mass_matrix != "diag" or self.chain_method == "chees"):
            raise ValueError(
                "backend='pymc' runs PyMC's own NUTS: mass_matrix must be 'diag' and chain_method not 'chees'"
            )
        if self.chain_method == "chees" and (self.mass_matrix != "diag" or self.chains < 2):
            raise ValueError(
                "chain_method='chees' adapts a diagonal mass matrix across chains: it needs "
                f"mass_matrix='diag' and chains >= 2 (use many), got mass_matrix={self.mass_matrix!r}, "
                f"chains={self.chains}"
            )
        if self.gauge is None:  # resolved here, so a manifest records the gauge actually used
            object.__setattr__(self, "gauge", "so2" if self.model == "tms" and self.r == 2 else "none")
        _validate.choice("gauge", self.gauge, GAUGES)
        if self.gauge != "none" and (self.model != "tms" or self.r != 2):
            raise ValueError(
                f"gauge={self.gauge!r} needs the TMS model with r = 2 "
                f"(got model={self.model!r}, r={self.r}); use gauge='none'"
            )
        if isinstance(self.beta, str):
            object.__setattr__(self, "beta", f"{parse_log_beta(self.beta):g}/log n")
        elif self.beta is not None:
            _validate.positive("beta", self.beta)
        if min(n) < 2 and self.beta_depends_on_n():
            raise ValueError(f"n must be >= 2 for β = {self.beta or '1/log n'} (log n > 0), got n = {min(n)}")
        from ..models.relu import pt1_truth, pt2_truth

        pt1_truth(
            self.theta
        )  # θ in (0, π/2] and ϑ > 0 (recorded with every model), before any directory is made
        pt2_truth(self.vartheta)
        from .nuts import NutsSettings

        NutsSettings(
            self.tune,
            self.draws,
            50,
            self.target_accept,
            self.max_tree_depth,
            self.chain_method,
            mass_matrix=self.mass_matrix,
        )

    @property
    def n_max(self) -> int:
        return max(self.n)

    def resolved_sigma(self) -> float:
        from ..models.tms import SIGMA_PAPER

        return self.sigma if self.sigma is not None else (SIGMA_PAPER if self.model == "tms" else 1.0)

    def resolved_d(self) -> int:
        return self.d if self.d is not None else (2 if self.model == "relu-pt1" else 3)

    def beta_depends_on_n(self) -> bool:
        """True when β is a/log n (the ReLU default, or a WBIC sweep), not one number."""
        return isinstance(self.beta, str) or (self.beta is None and self.model != "tms")

    def beta_for(self, n: int) -> float:
        if isinstance(self.beta, str):
            return parse_log_beta(self.beta) / math.log(n)
        if self.beta is not None:
            return float(self.beta)
        return 1.0 if self.model == "tms" else 1.0 / math.log(n)

    def likelihood_scale(self) -> dict:
        """σ and β of the likelihood, as the theory layer takes them (``sigma=``, ``beta=``): the energy is
        n_eff L_n with n_eff = nβ/(2σ²).  Only for a β that does not depend on n."""
        if self.beta_depends_on_n():
            raise ValueError(
                f"this {self.model} sweep tempers with β = {self.beta or '1/log n'}, "
                "which has no single likelihood scale"
            )
        return {"sigma": self.resolved_sigma(), "beta": self.beta_for(self.n[0])}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n"] = list(self.n)
        return d

    def job_settings(self) -> dict:
        """The settings every job's result depends on: all but :data:`JOB_RANGE` (recorded on each run
        file and checked when it is read)."""
        return {k: v for k, v in self.to_dict().items() if k not in JOB_RANGE}

    def data_seed(self, seed: int) -> int:
        """The dataset seed of seed index ``seed`` (0 … seeds − 1)."""
        return self.seed_offset + seed

    @classmethod
    def from_dict(cls, d: dict) -> "SweepSettings":
        """Settings recorded in a run directory (size ceilings guard new runs, not reopening one made
        with --force)."""
        d = dict(d)
        d["n"] = tuple(d["n"])
        with _validate.no_ceilings():
            return cls(**with_legacy(d, LEGACY))


parse_log_beta = log_beta_factor  # the factor a of β = a/log n (kept under its old name)


# ---------------------------------------------------------------------------------------------
# Models and data for a setting
# ---------------------------------------------------------------------------------------------
def dataset(settings: SweepSettings, seed: int) -> dict[str, np.ndarray]:
    """The full dataset (N = max n rows) of one seed; D_n is its first n rows."""
    from ..models.data import tms_inputs
    from ..models.relu import pt1_truth, pt2_truth, relu_data

    s = settings.data_seed(seed)
    if settings.model == "tms":
        return {"X": tms_inputs(settings.n_max, settings.c, seed=s)}
    truth = pt1_truth(settings.theta) if settings.model == "relu-pt1" else pt2_truth(settings.vartheta)
    X, y = relu_data(truth, settings.n_max, seed=s)
    return {"X": X, "y": y}


def build_model(settings: SweepSettings, data: dict, n: int, *, padded: bool = True):
    """The PyMC model of ``settings`` on D_n: padded to N rows with a mask, or exactly n rows."""
    from ..models.relu import relu_model
    from ..models.tms import tms_model

    rows_available = len(next(iter(data.values())))
    if n > rows_available:
        raise ValueError(f"n = {n} exceeds the dataset's {rows_available} rows; choose n <= {rows_available}")
    N = settings.n_max if padded else n
    mask = (np.arange(N) < n).astype(float)
    rows = {k: v[:N] for k, v in data.items()}
    if settings.model == "tms":
        return tms_model(
            rows["X"],
            r=settings.r,
            prior_std=settings.prior_std,
            sigma=settings.resolved_sigma(),
            beta=settings.beta_for(n),
            mask=mask,
            gauge=settings.gauge,
        )
    return relu_model(
        rows["X"],
        rows["y"],
        d=settings.resolved_d(),
        prior_std=settings.prior_std,
        sigma=settings.resolved_sigma(),
        beta=settings.beta_for(n),
        mask=mask,
    )


def run_model(idata):
    """The PyMC model of a saved run (settings from its attrs, D_n from its observed data, exactly n
    rows): e.g. ``pm.sample_posterior_predictive(idata, model=run_model(idata))``."""
    attrs = idata.posterior.attrs
    keys = [k for k in attrs if k.startswith("setting_")]
    if not keys or "n" not in attrs or "observed_data" not in idata.groups():
        raise ValueError(
            "this InferenceData is not a tms-bayes sweep run (no setting_* attrs or no observed data)"
        )
    raw = {k[len("setting_") :]: attrs[k] for k in keys}
    fields = {}
    for k, v in raw.items():
        if isinstance(v, str):
            try:  # lists and None were stored as JSON; names ("tms") and "a/log n" as plain text
                v = json.loads(v)
            except json.JSONDecodeError:
                pass
        fields[k] = v.item() if hasattr(v, "item") else v
    settings = SweepSettings.from_dict(fields)
    data = {k: np.asarray(idata.observed_data[k].values) for k in idata.observed_data.data_vars}
    return build_model(settings, data, int(attrs["n"]), padded=False)


def run_name(n: int, data_seed: int) -> str:
    """The job key and file stem of the run (n, dataset seed ``data_seed``)."""
    return f"n{n:06d}_seed{data_seed:03d}"


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------
class Sweep:
    """A sweep directory: settings, finished jobs, and the work to do.  See module docstring."""

    def __init__(self, settings: SweepSettings, out: str | Path):
        self.settings = settings
        self.out = Path(out)
        self.rundir = RunDir(out, "sweep", settings.to_dict(), "a sweep", legacy=LEGACY)
        if not self.rundir.manifest_path.exists() or not self.rundir.completed:
            self.rundir.extra.update(_NAMES)  # new, or nothing named yet
        elif settings.seed_offset and self.rundir.extra.get("run_names") != _NAMES["run_names"]:
            raise ValueError(
                f"{self.out} was written before run files were named by their dataset seed (its files "
                f"n…_seed000… hold dataset seeds {settings.seed_offset}…); convert it into a new "
                f"directory with: tms-bayes merge {self.out} --out NEW_DIR"
            )
        self.compilations = 0  # JAX programs compiled by this Sweep (1 for a whole jax sweep; 2 with ChEES)
        self.timings: dict[str, float] = {}
        self._datasets: dict[int, dict] = {}  # the dataset of the seed being run (one kept)
        self.statuses: dict[str, str] = {}  # what this run did with each job ("done", "held", "finished")
        self._loaded: dict[
            str, az.InferenceData
        ] = {}  # runs read from disk (analyses read each run several times)

    @property
    def completed(self) -> dict[str, str]:
        """{job name: its run file, relative to ``out``} for every finished job."""
        return {k: v[0] for k, v in self.rundir.completed.items()}

    def jobs(self) -> list[tuple[int, int]]:
        """Every job (n, seed index s), seed by seed."""
        return [(n, s) for s in range(self.settings.seeds) for n in self.settings.n]

    def name(self, n: int, s: int) -> str:
        """The key (and file stem) of job (n, seed index s): :func:`run_name` of its dataset seed."""
        return run_name(n, self.settings.data_seed(s))

    def job_attrs(self, n: int, s: int) -> dict:
        """The attrs that identify job (n, s) on its run file."""
        return {"n": n, "data_seed": self.settings.data_seed(s)}

    def spec(self) -> dict:
        """What a cluster worker needs to reopen this directory (:mod:`~tms_bayes.inference.executor`)."""
        return {"kind": "sweep", "settings": self.settings.to_dict()}

    def program_key(self) -> str:
        """Sweeps whose :meth:`runner` is the same compiled program: equal job settings (not the seeds)."""
        return json.dumps(self.settings.job_settings(), sort_keys=True)

    def pending(self) -> list[tuple[int, int]]:
        return [(n, s) for n, s in self.jobs() if not self.rundir.done(self.name(n, s))]

    def _write_manifest(self):
        self.rundir.start()

    def prepare(self, log=print) -> list[tuple[int, int]]:
        """Start the run directory, check its files (:meth:`verify`) and return the pending jobs."""
        self.rundir.start()
        self.verify(log)
        todo = self.pending()
        if not todo:
            log(f"all {len(self.jobs())} jobs of {self.out} are already finished")
        elif len(todo) < len(self.jobs()):
            log(
                f"resuming {self.out}: {len(self.jobs()) - len(todo)} of {len(self.jobs())} jobs "
                "already finished"
            )
        return todo

    def run(self, progress: bool = True, log=print, devices: int | None = None) -> "Sweep":
        """Run every pending job in this process.  ``devices``: see :func:`run_sweep`.

        On the CPU backend the runner samples as many jobs at once as it has devices (cores, see
        ``tms_bayes.configure``), each job's chains on one device — JAX releases the GIL while a
        compiled program runs, so the jobs sample in parallel threads through the one compiled
        program, and a job that finishes early frees its core for the next job instead of waiting for
        the slowest chain of a sharded batch.  On an accelerator one job samples at a time, its chains
        sharded.  A job's draws depend only on the job, never on which thread, device or batch ran it.

        Each finished job's run file is written by a writer thread while the next jobs sample.  Order
        and safety: a job is committed (file written, job recorded, claim released) before the next one
        is handed to the writer; a failed write stops the run before another job starts sampling; an
        interruption (SIGINT/SIGTERM in the main thread) stops the sampling threads at their next chunk
        of draws, discards and releases the jobs they held, and waits for the write in progress — so it
        loses at most the jobs in flight, one per sampling thread.  With one job at a time (one device,
        an accelerator, the PyMC backend) the job samples in this thread, where a signal interrupts it.
        (On a Dask cluster: :func:`tms_bayes.inference.executor.run_on_dask`; the files are the same.)"""
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        from tqdm.auto import tqdm

        todo = self.prepare(log)
        if not todo:
            return self
        runner = self.runner(devices, concurrent=True)
        runner.while_compiling.append(netcdf.warm_up)  # the first run file costs more: set it up meanwhile
        parallel = max(1, min(runner.parallel_jobs, len(todo)))
        overall = tqdm(total=len(todo), desc="sweep", unit="job", disable=not progress, position=0)
        cancel = threading.Event()  # tells the sampling threads to stop at their next chunk
        claimed = set()  # jobs this run claimed that are not yet the writer's (released if the run stops)
        sampling = {}  # future -> (job name, progress-bar slot): claimed jobs being sampled
        slots = list(range(parallel, 0, -1))  # free progress-bar rows below the sweep's own
        writing = None  # (name, future): the commit of the job handed to the writer last

        def settle():  # wait for the last commit; a failed write is raised here, in this thread
            nonlocal writing
            name, future = writing
            try:
                future.result()
            except BaseException:
                if future.done():
                    writing = None  # its failure is what propagates
                raise
            writing = None
            self.statuses[name] = "done"
            overall.update(1)

        def hand_over(done):  # finished samples go to the writer, one commit at a time
            nonlocal writing
            for future in done:
                name, slot = sampling[future]
                idata = future.result()  # a failed job stops the run (its claim: ``claimed``)
                if writing is not None:
                    settle()
                writing = (name, writer.submit(self._commit, name, idata))
                claimed.discard(name)  # the writer's to release now
                del sampling[future]
                slots.append(slot)

        def start(n, s, name):
            data, slot = self._dataset(s), slots.pop()
            if parallel == 1:  # in this thread, as before: a signal interrupts PyMC's sampler too
                future = Future()
                future.set_result(self._sample(n, s, runner, progress, data, slot, cancel))
            else:
                future = sampler.submit(self._sample, n, s, runner, progress, data, slot, cancel)
            sampling[future] = (name, slot)

        try:
            with (
                ThreadPoolExecutor(1, thread_name_prefix="tms-bayes-writer") as writer,
                ThreadPoolExecutor(parallel, thread_name_prefix="tms-bayes-sampler") as sampler,
            ):
                try:
                    for n, s in todo:
                        hand_over([f for f in sampling if f.done()])  # a failed job stops the run early
                        if len(sampling) == parallel:
                            hand_over(wait(sampling, return_when=FIRST_COMPLETED).done)
                        if writing is not None and writing[1].done():
                            settle()  # a write that failed stops the run before another job samples
                        name = self.name(n, s)
                        overall.set_postfix_str(f"n={n} seed={self.settings.data_seed(s)}")
                        taken = self.rundir.take(name)
                        if taken:
                            self.statuses[name] = taken
                            if taken == "held":
                                log(f"{name} is being run by another process; skipped here")
                            overall.update(1)
                            continue
                        claimed.add(name)
                        start(n, s, name)
                    while sampling:
                        hand_over(wait(sampling, return_when=FIRST_COMPLETED).done)
                    if writing is not None:
                        settle()
                finally:
                    cancel.set()  # the sampling threads stop at their next chunk; leaving waits for them
        except BaseException:
            if writing is not None and writing[1].done():  # the commit in progress when the run stopped
                failed = writing[1].exception()
                if failed is not None:  # not lost behind the exception that propagates
                    log(f"writing {writing[0]} failed too: {failed!r}")
                else:
                    self.statuses[writing[0]] = "done"
            raise
        finally:  # leaving the executors' block waited for the sampling threads and the write in progress
            for name in claimed:  # claimed, sampled or stopped, but never handed to the writer
                self.rundir.release(name)
            overall.close()
            self.compilations = runner.compilations
            self.timings = runner.timings
        return self

    def runner(self, devices: int | None = None, *, concurrent: bool = False):
        """The compiled sampler of this sweep's settings (compiled on its first job, then reused).
        ``concurrent``: for a caller that samples ``runner.parallel_jobs`` jobs at once (:meth:`run`);
        otherwise (a cluster worker's :meth:`run_job`) one job at a time, its chains sharded over
        ``devices`` (see :func:`run_sweep`)."""
        if self.settings.backend == "jax":
            return _JaxRunner(self, devices, concurrent=concurrent)
        return _PymcRunner(self)

    def run_job(self, n: int, s: int, runner, *, progress: bool = False, token: str | None = None) -> str:
        """Run job (n, seed s) with ``runner`` (:meth:`runner`) unless another writer has it: claim it
        (a lock file), sample, commit its run file, release.  Returns "done", "held" (another writer
        holds it) or "finished" (another writer finished it meanwhile).  What a cluster worker calls,
        with its task's key as ``token`` (:meth:`~tms_bayes.store.rundir.RunDir.claim`)."""
        name = self.name(n, s)
        taken = self.rundir.take(name, token)
        if taken:
            return taken
        try:
            idata = self._sample(n, s, runner, progress)
        except BaseException:
            self.rundir.release(name)
            raise
        self._commit(name, idata)
        return "done"

    def _dataset(self, s: int) -> dict:
        """The dataset of seed index ``s`` (the last one asked for is kept: jobs run seed by seed)."""
        if s not in self._datasets:
            self._datasets = {s: dataset(self.settings, s)}
        return self._datasets[s]

    def _sample(
        self, n: int, s: int, runner, progress: bool, data=None, position: int = 1, cancel=None
    ) -> az.InferenceData:
        """Sample job (n, s) with ``runner`` (on ``data``, the seed's dataset, when given); ``position``:
        its progress bar's row; ``cancel`` (a ``threading.Event``): stop at the next chunk of draws."""
        data = self._dataset(s) if data is None else data
        t0 = time.perf_counter()
        idata = runner.run_job(
            n, self.settings.data_seed(s), data, progress=progress, position=position, cancel=cancel
        )
        idata.posterior.attrs["wall_time_s"] = time.perf_counter() - t0
        return idata

    def _commit(self, name: str, idata: az.InferenceData) -> None:
        """Write a claimed job's run file, record it, release the claim (also when writing fails)."""
        try:
            self.rundir.commit(name, {f"runs/{name}.nc": lambda path: write_netcdf(path, idata)})
        finally:
            self.rundir.release(name)

    def finished(self) -> list[tuple[int, int]]:
        """The finished jobs (n, seed), in job order."""
        return [(n, s) for n, s in self.jobs() if self.rundir.done(self.name(n, s))]

    def load(self, n: int, seed: int) -> az.InferenceData:
        """The finished run (n, seed index ``seed``), read once and kept in memory; a file that is
        unreadable or holds another run (other n, dataset seed or settings: swapped, copied) is refused,
        named."""
        name = self.name(n, seed)
        if not self.rundir.done(name):
            raise ValueError(f"no finished run for n={n}, seed={seed} in {self.out}")
        if name not in self._loaded:
            path = self.rundir.path(name)
            self._loaded[name] = load_run(
                path, job=self.job_attrs(n, seed), settings=self.settings.job_settings()
            )
        return self._loaded[name]

    def verify(self, log=print) -> list[str]:
        """Check every run file (readable, and holding its own n, seed and settings): set aside each one
        that is not (``set_aside/``, kept) so that this run redoes it, and adopt a complete file whose
        job was never recorded (:meth:`~tms_bayes.store.rundir.RunDir.verify`).  Returns the names set
        aside."""
        units = {
            self.name(n, s): {f"runs/{self.name(n, s)}.nc": self.job_attrs(n, s)} for n, s in self.jobs()
        }
        bad = self.rundir.verify(units, log, settings=self.settings.job_settings())
        for name in bad:
            self._loaded.pop(name, None)
        return bad


def run_sweep(
    settings: SweepSettings, out, *, progress: bool = True, log=print, devices: int | None = None
) -> Sweep:
    """Run (or resume) the sweep ``settings`` into ``out``; returns the :class:`Sweep`.  ``devices``
    (JAX backend; None: ``jax.device_count()``, see ``tms_bayes.configure``): on the CPU backend how
    many jobs sample at once (one core each), on an accelerator how many devices each job's chains are
    sharded over (as many as divide the chains).  A run-time choice, not a setting: the draws are the
    same (attrs ``parallel_jobs``, ``device_shards``)."""
    return Sweep(settings, out).run(progress=progress, log=log, devices=devices)


#: dims of run files written before one feature-axis name
#: (W (row, col), b (col), X (obs, xfeature); ReLU X (obs, xdim))
_OLD_DIMS = {"row": "hidden", "col": "feature", "xfeature": "feature", "xdim": "input"}


def load_run(path, *, job: dict | None = None, settings: dict | None = None) -> az.InferenceData:
    """Read one job's InferenceData fully into memory (the file is not kept open).  Files written before
    the dims were renamed get today's names, so old and new runs of one sweep line up.  With ``job``
    (its attrs, e.g. {"n": 100, "data_seed": 0}) and ``settings``, a file holding another run — swapped,
    copied from another directory — is refused, named (:func:`~tms_bayes.store.rundir.run_mismatch`)."""
    try:
        idata = read_inference_data(path)
    except (PermissionError, MemoryError):
        raise  # the file may be fine: a problem of the reader
    except Exception as exc:  # truncated, not HDF5, not InferenceData
        raise ValueError(
            f"{path} is not a readable run file ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
            "it is truncated or corrupt: move it out of the directory and re-run "
            "(tms-bayes sweep does this itself)"
        ) from None
    for g in idata.groups():
        ds = getattr(idata, g).load()
        old = {k: v for k, v in _OLD_DIMS.items() if k in ds.dims}
        if old:
            setattr(idata, g, ds.rename(old))
    if job is not None:
        problem = run_mismatch(dict(idata.posterior.attrs), job, settings or {})
        if problem:
            what = ", ".join(f"{k}={v}" for k, v in job.items())
            raise ValueError(
                f"{path} is not the run {what} of this directory ({problem}); "
                "move it out of the directory and re-run (tms-bayes sweep does this itself) to redo it"
            )
    return idata


def load_sweep(out) -> Sweep:
    """Open an existing sweep directory (its manifest's settings) without running anything."""
    settings = SweepSettings.from_dict(
        RunDir.existing_settings(out, "sweep", "a sweep directory (tms-bayes sweep or run)")
    )
    return Sweep(settings, out)


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------
def _attrs(settings: SweepSettings, n: int, data_seed: int, **extra) -> dict:
    """The attrs of run (n, ``data_seed``): the job settings, not :data:`JOB_RANGE` (module docstring)."""
    return make_attrs(
        settings.job_settings(),
        n=n,
        data_seed=data_seed,
        beta_used=settings.beta_for(n),
        sigma_used=settings.resolved_sigma(),
        **extra,
    )


def prior_start(st: SweepSettings, cm, rng: np.random.Generator) -> np.ndarray:
    """Over-dispersed starts (chains, dim) in the layout of ``cm``: one draw per chain from the prior
    N(0, prior_std²) of the unfixed parameters (TMS: W, b) — in the SO(2) gauge the same W mapped to
    its gauge coordinates (log ρ, Y) by :func:`~tms_bayes.models.tms.to_gauge`, so both
    parameterisations start from the same networks.  Draws from ``rng`` (a job's is seeded by
    [dataset seed, n, 7])."""
    if st.gauge == "none":
        return st.prior_std * rng.normal(size=(st.chains, cm.dim))
    from ..models.tms import to_gauge

    raw = st.prior_std * rng.normal(size=(st.chains, st.r * st.c + st.c))
    W, b = raw[:, : st.r * st.c].reshape(st.chains, st.r, st.c), raw[:, st.r * st.c :]
    rho, Y = to_gauge(W)
    return np.concatenate([np.log(rho)[:, None], Y.reshape(st.chains, -1), b], axis=1)


def _observed(data: dict, n: int) -> dict:
    return {k: v[:n] for k, v in data.items()}


class _JaxRunner:
    """Compiles warmup and sampling once (AOT, :class:`~tms_bayes.inference.nuts.ChainSampler`) and
    runs every job through them.  ``parallel_jobs``: how many jobs a ``concurrent`` caller
    (:meth:`Sweep.run`) samples at once — on the CPU backend ``devices`` (default
    ``jax.device_count()``, which ``tms_bayes.configure`` sets to the number of cores), each job's
    chains unsharded on the first device (XLA runs one compiled program from several threads at once);
    otherwise one, its chains sharded over ``devices``."""

    def __init__(self, sweep: Sweep, devices: int | None = None, concurrent: bool = False):
        from .._jax import jax
        from .compile import compile_model
        from .nuts import ChainSampler, NutsSettings

        self.jax = jax
        self.sweep = sweep
        st = sweep.settings
        if devices is not None:
            _validate.integer("devices", devices, minimum=1)
        jobs_at_once = concurrent and jax.default_backend() == "cpu"  # each job on device 0, unsharded
        self.parallel_jobs = (devices or jax.device_count()) if jobs_at_once else 1
        self.devices = 1 if jobs_at_once else devices
        nuts = NutsSettings(
            tune=st.tune,
            draws=st.draws,
            chunk=min(50, st.draws),
            target_accept=st.target_accept,
            max_tree_depth=st.max_tree_depth,
            chain_method=st.chain_method,
            devices=self.devices,
            mass_matrix=st.mass_matrix,
        )
        t0 = time.perf_counter()
        model = build_model(st, dataset(st, 0), st.n_max)
        self.model = model
        self.cm = compile_model(model)
        self.dims = dict(model.named_vars_to_dims)
        self.coords = {k: np.asarray(v) for k, v in model.coords.items()}
        self.sampler = ChainSampler(self.cm, nuts, st.chains)
        self.cm._posterior  # one jitted program for every sampling thread (created here, not raced for)
        self.while_compiling = []  # callables run beside the sampler's compilation (Sweep.run: netCDF)
        self._posterior_ready = threading.Event()
        self._posterior_ready.set()  # until a compilation starts the posterior program beside it
        self.timings = {"graph_s": time.perf_counter() - t0, "compile_s": 0.0}

    @property
    def compilations(self) -> int:
        return self.sampler.compilations

    def _beside_xla(self, shape, job_data) -> None:
        """Called as XLA starts compiling the sampler (it releases the GIL): a helper thread compiles
        the posterior program (what a job needs after sampling), then runs ``while_compiling`` (the
        caller's set-up, e.g. of the netCDF writer).  Best effort: a failure is warned about, not
        raised — the work is done again, or fails properly, where it is needed."""

        def best_effort(task, what):
            try:
                task()
            except Exception as exc:  # noqa: BLE001  (a speed-up only)
                warnings.warn(f"{what} beside the compilation failed ({exc!r}); carrying on", RuntimeWarning)

        def work():
            try:
                best_effort(lambda: self.cm.posterior(np.zeros(shape), job_data), "compiling the posterior")
            finally:
                self._posterior_ready.set()
            for task in self.while_compiling:
                best_effort(task, getattr(task, "__qualname__", repr(task)))

        self._posterior_ready.clear()
        threading.Thread(target=work, name="tms-bayes-beside-xla", daemon=True).start()

    def _job_data(self, n, data):
        from .nuts import stack_data

        st = self.sweep.settings
        job = self.cm.with_data(
            **{k: v for k, v in data.items()},
            mask=(np.arange(st.n_max) < n).astype(float),
            beta=st.beta_for(n),
        )
        return job, stack_data(job, st.chains)

    def run_job(self, n, data_seed, data, progress=True, position=1, cancel=None):
        """Job (n, dataset ``data_seed``) as InferenceData; ``position``: its progress bar's row;
        ``cancel``: a ``threading.Event`` that stops it at its next chunk of draws
        (:class:`~tms_bayes.inference.nuts.Cancelled`)."""
        from tqdm.auto import tqdm

        from .nuts import shard_count

        jax, jnp = self.jax, self.jax.numpy
        st = self.sweep.settings
        job_data, stacked = self._job_data(n, data)
        rng = np.random.default_rng([data_seed, n, 7])
        init = jnp.asarray(prior_start(st, self.cm, rng))
        key = jax.random.key(int(rng.integers(2**31)))
        bar = tqdm(
            total=st.tune + st.draws,
            desc=f"  n={n} seed={data_seed}",
            unit="step",
            leave=False,
            disable=not progress,
            position=position,
        )
        try:
            shape = (st.chains, st.draws, self.cm.dim)
            draws, elapsed = self.sampler.run(
                key, init, stacked, bar, cancel=cancel, before_xla=lambda: self._beside_xla(shape, job_data)
            )
        finally:
            bar.close()
        self.timings["compile_s"] = self.sampler.compile_s
        self._posterior_ready.wait()  # compiled beside the sampler (by the job that compiled it)
        # W, b (and a gauge's coordinates), L_n; ℓ_k of every row, the first n kept
        posterior, ell = self.cm.posterior(draws["position"], job_data)
        return _to_idata(
            posterior,
            self.sampler.stats(draws),
            _observed(data, n),
            self.dims,
            self.coords,
            {self.cm.observed_name: ell[..., :n]},
            _attrs(
                st,
                n,
                data_seed,
                backend="jax-blackjax",
                chain_method=st.chain_method,
                sampling_time_s=elapsed,
                max_tree_depth=st.max_tree_depth,
                device_shards=shard_count(st.chains, self.devices),
                parallel_jobs=self.parallel_jobs,
                jax_backend=jax.default_backend(),
            ),
        )


class _PymcRunner:
    """PyMC's own ``pm.sample`` on each job (for comparison, and for users without JAX)."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.parallel_jobs = 1
        self.while_compiling = []  # nothing compiles beside PyMC's own sampling: never run
        self.compilations = 0
        self.timings = {}

    def run_job(self, n, data_seed, data, progress=True, position=1, cancel=None):
        import pymc as pm

        st = self.sweep.settings
        model = build_model(st, data, n, padded=False)
        t0 = time.perf_counter()
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = pm.sample(
                draws=st.draws,
                tune=st.tune,
                chains=st.chains,
                cores=1,
                random_seed=[data_seed, n],
                target_accept=st.target_accept,
                progressbar=progress,
                compute_convergence_checks=False,
                nuts={"max_treedepth": st.max_tree_depth},
                idata_kwargs={"log_likelihood": True},
            )
        elapsed = time.perf_counter() - t0
        post = {k: idata.posterior[k].values for k in idata.posterior.data_vars}
        ss = idata.sample_stats
        stats = {
            k: ss[k].values
            for k in ("lp", "energy", "n_steps", "tree_depth", "diverging", "acceptance_rate", "step_size")
            if k in ss
        }
        stats["reached_max_treedepth"] = (
            ss["reached_max_treedepth"].values
            if "reached_max_treedepth" in ss
            else stats["tree_depth"] >= st.max_tree_depth
        )
        dims = dict(model.named_vars_to_dims)
        coords = {k: np.asarray(v) for k, v in model.coords.items()}
        ll = {k: _rowwise(idata.log_likelihood[k]) for k in idata.log_likelihood.data_vars}
        attrs = _attrs(
            st, n, data_seed, backend="pymc", sampling_time_s=elapsed, max_tree_depth=st.max_tree_depth
        )
        return _to_idata(post, stats, _observed(data, n), dims, coords, ll, attrs)


def _rowwise(ll) -> np.ndarray:
    """A PyMC log-likelihood variable (chain, draw, obs, ...) summed to one value per row."""
    return ll.sum([d for d in ll.dims if d not in ("chain", "draw", "obs")]).values


#: ``warnings.catch_warnings`` swaps the process's filters: sampling threads enter it one at a time
_WARNINGS = threading.Lock()


def _to_idata(posterior, stats, observed, dims, coords, log_likelihood, attrs) -> az.InferenceData:
    """One job's InferenceData; ``log_likelihood`` {observed name: (chain, draw, n)} is stored in float32."""
    obs_dims = {k: list(dims[k]) for k in observed}
    n = len(next(iter(observed.values())))
    coords = {**{k: v for k, v in coords.items() if k != "obs"}, "obs": np.arange(n)}
    var_dims = {k: list(v) for k, v in dims.items() if k in posterior and v}
    ll_dims = {k: ["obs"] for k in log_likelihood}
    log_likelihood = {k: np.asarray(v, dtype=np.float32) for k, v in log_likelihood.items()}
    with _WARNINGS, warnings.catch_warnings():  # the filters are process-wide: one thread at a time
        warnings.simplefilter("ignore")
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=stats,
            observed_data=observed,
            log_likelihood=log_likelihood,
            coords=coords,
            dims={**var_dims, **obs_dims, **ll_dims},
        )
    for g in idata.groups():
        getattr(idata, g).attrs.update(attrs)
    return idata
