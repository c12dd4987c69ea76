"""SGD training dynamics of the TMS, many runs vectorised, with λ̂ along the trajectories (SPEC 4).

Protocol (the TMS paper's dynamical experiment; all settings configurable, :class:`DynamicsSettings`):
n = 1000 samples, minibatch SGD (batch 20, learning rate 0.005, or Adam), 4500 epochs; each run starts
at a 4-gon of column norm 0.9 with N(0, 0.01²) noise on every weight and N(0, bias_std²) biases, and
has its own dataset.  Each epoch visits a fresh permutation of the data in n // batch minibatches.
The training loss is the unhalved L_n of SPEC 1.

Runs are ``vmap``ped; epochs run inside one compiled program (``lax.scan`` over checkpoint intervals,
``fori_loop`` over the epochs of an interval, ``scan`` over minibatches).  Checkpoints are log-spaced in
epochs.  At each checkpoint: the parameters, L_n on the run's training set, the closed-form L (SPEC 1.1)
and λ̂ by SGLD (SPEC 3: ε = 1e-3, γ = 1, nβ = n/log n, 500 full-batch steps), the chains of every
(run, checkpoint) vmapped together, through :func:`tms_bayes.inference.llc.sgld_trace`.

Results are an ``xarray.Dataset`` over (run, checkpoint) with every setting in ``attrs``.  Runs are
processed in batches, each written atomically to ``parts/`` under the output directory; a re-run with the
same settings resumes, a different one is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__, _validate
from .._options import setting
from .._jax import jax, jnp
from ..models.data import tms_inputs
from ..theory.potential import TMSParams, empirical_loss_jax, pack, potential_jax, unpack
from .llc import llc_standard_error, sgld_trace
from ..store.atomic import write_netcdf
from ..store.netcdf import open_dataset
from ..store.rundir import RunDir

__all__ = [
    "DynamicsSettings",
    "checkpoint_epochs",
    "initial_params",
    "train",
    "trajectory_llc",
    "run_dynamics",
    "DynamicsRun",
    "load_dynamics",
]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class DynamicsSettings:
    """Settings of a dynamics experiment (module docstring); the defaults are the published protocol."""

    runs: int = setting(64, "training runs, vectorised")
    c: int = setting(6, "features c")
    r: int = setting(2, "hidden dimension r", cli=False)
    n: int = setting(1000, "training samples per run")
    batch_size: int = setting(20, "SGD minibatch size")
    lr: float = setting(0.005, "learning rate")
    epochs: int = setting(4500, "epochs")
    optimizer: str = setting("sgd", "optimiser (optax)", choices=OPTIMIZERS)
    init_k: int = setting(4, "start at a k-gon (2: an antipodal pair, devinterp's TMS example)")
    init_norm: float = setting(0.9, "column norm of the starting k-gon")
    init_noise: float = setting(0.01, "std of the noise added to the starting W")
    init_bias_std: float = setting(0.01, "std of the starting bias")
    checkpoints: int = setting(40, "log-spaced checkpoints")
    llc: bool = setting(True, "skip λ̂ at the checkpoints", flag="--no-llc")
    llc_eps: float = setting(1e-3, "SGLD step ε for λ̂")
    llc_gamma: float = setting(1.0, "λ̂ localisation strength γ")
    llc_steps: int = setting(500, "SGLD steps per λ̂ chain")
    llc_chains: int = setting(2, "SGLD chains per checkpoint")
    llc_burn_in: int | None = setting(
        None, "SGLD steps dropped before averaging", parse=int, show="min(100, steps/5)"
    )
    nbeta: float | None = setting(None, "nβ for λ̂", parse=float, show="n/log n")
    seed: int = setting(0, "PRNG seed")
    run_batch: int = setting(16, "runs per saved batch (resume granularity)")

    def __post_init__(self):
        _validate.integer("runs", self.runs, minimum=1)
        _validate.ceiling("runs", self.runs, 100_000)
        _validate.ceiling("n", self.n, 1_000_000)
        _validate.integer("c", self.c, minimum=2)
        _validate.integer("r", self.r, minimum=1)
        _validate.integer("n", self.n, minimum=2)
        _validate.integer("batch_size", self.batch_size, minimum=1, maximum=self.n)
        _validate.positive("lr", self.lr)
        if self.lr > 1:
            raise ValueError(f"lr must be in (0, 1] (larger steps diverge on these models), got {self.lr!r}")
        _validate.integer("epochs", self.epochs, minimum=1)
        _validate.ceiling(
            "optimiser steps (epochs × n / batch_size)", self.epochs * self.n // self.batch_size, 100_000_000
        )
        _validate.choice("optimizer", self.optimizer, OPTIMIZERS)
        _validate.integer("init_k", self.init_k, minimum=2 if self.r == 2 else 1, maximum=self.c)
        _validate.positive("init_norm", self.init_norm)
        for name in ("init_noise", "init_bias_std"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        _validate.integer("checkpoints", self.checkpoints, minimum=2)
        _validate.positive("llc_eps", self.llc_eps)
        _validate.positive("llc_gamma", self.llc_gamma)
        _validate.integer("llc_steps", self.llc_steps, minimum=10)
        _validate.integer("llc_chains", self.llc_chains, minimum=1)
        if self.llc_burn_in is None:
            object.__setattr__(self, "llc_burn_in", min(100, int(self.llc_steps) // 5))
        _validate.integer("llc_burn_in", self.llc_burn_in, minimum=0, maximum=self.llc_steps - 5)
        if self.nbeta is not None:
            _validate.positive("nbeta", self.nbeta)
        _validate.integer("seed", self.seed, minimum=0)
        _validate.integer("run_batch", self.run_batch, minimum=1)

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch_size

    @property
    def nbeta_value(self) -> float:
        return self.nbeta if self.nbeta is not None else self.n / math.log(self.n)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DynamicsSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def checkpoint_epochs(epochs: int, count: int) -> np.ndarray:
    """0 and ``count − 1`` epochs log-spaced in [1, epochs] (rounded, unique, ``epochs`` included)."""
    epochs = _validate.integer("epochs", epochs, minimum=1)
    count = _validate.integer("count", count, minimum=2)
    e = np.unique(np.round(np.geomspace(1, epochs, count - 1)).astype(int))
    return np.concatenate([[0], e])


def initial_params(key, s: DynamicsSettings):
    """A k-gon (k = ``init_k``) of column norm ``init_norm`` at a random rotation in the first k columns,
    zero columns elsewhere, N(0, init_noise²) on every weight and N(0, init_bias_std²) biases.
    Returns :class:`TMSParams` (W (r, c), b (c))."""
    k_rot, k_noise, k_bias = jax.random.split(key, 3)
    phase = jax.random.uniform(k_rot, (), maxval=2 * jnp.pi)
    ang = phase + 2 * jnp.pi * jnp.arange(s.init_k) / s.init_k
    W = jnp.zeros((s.r, s.c))
    W = (
        W.at[0, : s.init_k].set(s.init_norm * jnp.cos(ang)).at[1, : s.init_k].set(s.init_norm * jnp.sin(ang))
        if s.r >= 2
        else W.at[0, : s.init_k].set(s.init_norm)
    )
    W = W + s.init_noise * jax.random.normal(k_noise, W.shape)
    b = s.init_bias_std * jax.random.normal(k_bias, (s.c,))
    return TMSParams(W, b)


def _optimizer(s: DynamicsSettings):
    """(init, update) of plain SGD or Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) on a parameter pytree, from
    optax (``optax.sgd``, ``optax.adam``)."""
    import optax

    tx = optax.sgd(s.lr) if s.optimizer == "sgd" else optax.adam(s.lr, b1=0.9, b2=0.999, eps=1e-8)

    def update(p, g, st):
        updates, st = tx.update(g, st, p)
        return optax.apply_updates(p, updates), st

    return tx.init, update


def train(keys, X, s: DynamicsSettings, epochs_at: np.ndarray, init=None):
    """Train one run per key on its dataset X (runs, n, c); returns W (runs, K, r, c), b (runs, K, c)
    at the checkpoint epochs ``epochs_at`` (K of them, starting at 0).  ``init`` = (W0, b0) replaces
    the protocol's random k-gon start by a given point (the same for every run)."""
    opt_init, opt_update = _optimizer(s)
    nb, bs = s.steps_per_epoch, s.batch_size
    grad = jax.grad(lambda p, Xb: empirical_loss_jax(p.W, p.b, Xb))
    starts = jnp.asarray(epochs_at[:-1])
    stops = jnp.asarray(epochs_at[1:])

    def one(key, Xr):
        k_init, k_data = jax.random.split(key)
        p0 = (
            initial_params(k_init, s)
            if init is None
            else TMSParams(jnp.asarray(init[0], dtype=float), jnp.asarray(init[1], dtype=float))
        )

        def epoch(e, carry):
            p, st = carry
            perm = jax.random.permutation(jax.random.fold_in(k_data, e), s.n)[: nb * bs].reshape(nb, bs)

            def minibatch(c, idx):
                p, st = c
                return opt_update(p, grad(p, Xr[idx]), st), None

            return jax.lax.scan(minibatch, (p, st), perm)[0]

        def interval(carry, se):
            carry = jax.lax.fori_loop(se[0], se[1], epoch, carry)
            return carry, carry[0]

        _, ps = jax.lax.scan(interval, (p0, opt_init(p0)), (starts, stops))
        W = jnp.concatenate([p0.W[None], ps.W])
        b = jnp.concatenate([p0.b[None], ps.b])
        return W, b

    return jax.jit(jax.vmap(one))(keys, X)


def trajectory_llc(key, W, b, X, s: DynamicsSettings):
    """λ̂ by SGLD at every checkpoint of every run: W (runs, K, r, c), b (runs, K, c), X (runs, n, c).

    Returns (λ̂, its standard error, MALA acceptance), each (runs, K): λ̂ = nβ (mean L_n over the kept
    steps of every chain − L_n(w*)) (SPEC 3), and the one standard error of every λ̂ in tms-bayes,
    sd/√ESS (:func:`tms_bayes.inference.llc.llc_standard_error`)."""
    runs, K = W.shape[:2]
    nbeta, n = s.nbeta_value, s.n
    beta = nbeta / n
    flat = jax.vmap(jax.vmap(pack))(W, b)  # (runs, K, d), the layout of theory.potential.pack

    def nll(w, Xr):
        return n * empirical_loss_jax(*unpack(w, s.r, s.c), Xr)

    def chain(k, w_star, Xr):
        nll_and_grad = jax.value_and_grad(lambda w: nll(w, Xr))
        trace, acc = sgld_trace(
            k, w_star, nll_and_grad, eps=s.llc_eps, gamma=s.llc_gamma, beta=beta, steps=s.llc_steps
        )
        return beta * (trace[s.llc_burn_in :] - nll(w_star, Xr)), acc[s.llc_burn_in :].mean()

    def point(k, w_star, Xr):
        excess, acc = jax.vmap(chain, in_axes=(0, None, None))(jax.random.split(k, s.llc_chains), w_star, Xr)
        return excess, acc.mean()

    keys = jax.random.split(key, runs * K).reshape(runs, K)
    fn = jax.jit(jax.vmap(jax.vmap(point, in_axes=(0, 0, None)), in_axes=(0, 0, 0)))
    excess, acc = fn(keys, flat, X)  # excess: (runs, K, chains, kept steps)
    excess = np.asarray(excess)
    lam, se = np.empty((runs, K)), np.empty((runs, K))
    for i in range(runs):
        for j in range(K):
            lam[i, j], se[i, j], _ = llc_standard_error(excess[i, j])
    return lam, se, np.asarray(acc)


def _run_batch(s: DynamicsSettings, run_ids: np.ndarray, epochs_at: np.ndarray, init=None) -> xr.Dataset:
    root = jax.random.key(s.seed)
    keys = jnp.stack([jax.random.fold_in(root, int(i)) for i in run_ids])
    X = jnp.stack([jnp.asarray(tms_inputs(s.n, s.c, seed=s.seed * 100_003 + int(i))) for i in run_ids])
    W, b = train(keys, X, s, epochs_at, init)
    loss_n = jax.vmap(jax.vmap(empirical_loss_jax, in_axes=(0, 0, None)))(W, b, X)
    loss = jax.vmap(jax.vmap(potential_jax))(W, b)
    K = len(epochs_at)
    out = {
        "W": (("run", "checkpoint", "hidden", "feature"), np.asarray(W)),
        "b": (("run", "checkpoint", "feature"), np.asarray(b)),
        "loss_n": (("run", "checkpoint"), np.asarray(loss_n)),
        "loss": (("run", "checkpoint"), np.asarray(loss)),
    }
    if s.llc:
        lam, se, acc = trajectory_llc(jax.random.fold_in(root, 10**9 + int(run_ids[0])), W, b, X, s)
        out.update(
            {
                "llc": (("run", "checkpoint"), lam),
                "llc_se": (("run", "checkpoint"), se),
                "llc_acceptance": (("run", "checkpoint"), acc),
            }
        )
    else:
        nan = np.full((len(run_ids), K), np.nan)
        out.update(
            {
                "llc": (("run", "checkpoint"), nan),
                "llc_se": (("run", "checkpoint"), nan),
                "llc_acceptance": (("run", "checkpoint"), nan),
            }
        )
    coords = {
        "run": run_ids,
        "checkpoint": np.arange(K),
        "epoch": ("checkpoint", epochs_at),
        "step": ("checkpoint", epochs_at * s.steps_per_epoch),
    }
    return xr.Dataset(out, coords=coords)


def _attrs(s: DynamicsSettings) -> dict:
    d = {k: ("none" if v is None else (int(v) if isinstance(v, bool) else v)) for k, v in s.to_dict().items()}
    d.update(
        tms_bayes_version=__version__,
        nbeta_used=s.nbeta_value,
        loss="L_n = (1/n) sum_k |x_k - ReLU(W^T W x_k + b)|^2 (unhalved); loss = closed-form L",
        llc_formula=(
            "llc = n*beta*(mean L_n over SGLD steps after burn-in - L_n(w*)), "
            "SGLD on exp(-n*beta*L_n - gamma/2 |w - w*|^2)"
        ),
    )
    return d


class DynamicsRun:
    """A dynamics directory: its settings, the batches of runs (one job each:
    ``parts/runs_<first>_<last>.nc``), and ``dynamics.nc``, the batches combined.  The job protocol of
    every run directory (``name``, ``spec``, ``program_key``, ``prepare``, ``runner``, ``run_job``), so
    its batches also run on a Dask cluster (:func:`tms_bayes.inference.executor.run_on_dask`).
    ``init`` = (W0, b0): start every run there instead of the protocol's random k-gon."""

    def __init__(self, settings: DynamicsSettings, out, init=None):
        self.settings = settings
        self.out = Path(out)
        self.init = None if init is None else tuple(np.asarray(a, dtype=float) for a in init)
        compared = {**settings.to_dict(), "init": None if init is None else [a.tolist() for a in self.init]}
        self.rundir = RunDir(out, "dynamics", compared, "a dynamics run")
        self.epochs_at = checkpoint_epochs(settings.epochs, settings.checkpoints)
        self.batches = {
            self.name(i, min(i + settings.run_batch, settings.runs) - 1): (
                i,
                min(i + settings.run_batch, settings.runs) - 1,
            )
            for i in range(0, settings.runs, settings.run_batch)
        }
        self.statuses: dict[str, str] = {}
        self.compilations, self.timings = 0, {}

    @staticmethod
    def name(first: int, last: int) -> str:
        """The key of the batch of runs ``first`` … ``last``."""
        return f"runs_{first:05d}_{last:05d}"

    def spec(self) -> dict:
        """What a cluster worker needs to reopen this directory (:mod:`~tms_bayes.inference.executor`)."""
        return {
            "kind": "dynamics",
            "settings": self.settings.to_dict(),
            "init": None if self.init is None else [a.tolist() for a in self.init],
        }

    def program_key(self) -> str:
        """Batches that run through the same compiled programs: equal settings."""
        return json.dumps(self.settings.to_dict(), sort_keys=True)

    def prepare(self, log=print) -> list[tuple[int, int]]:
        """Start the directory, set aside any part that is unreadable or holds other runs (kept; it is
        redone), and return the pending batches (first, last)."""
        self.rundir.start()
        self.rundir.verify(
            {
                k: {f"parts/{k}.nc": {"runs_from": first, "runs_to": last}}
                for k, (first, last) in self.batches.items()
            },
            log or (lambda *_: None),
            settings={},
            group=None,
        )
        return [job for k, job in self.batches.items() if not self.rundir.done(k)]

    def runner(self) -> "_BatchRunner":
        return _BatchRunner()

    def run_job(
        self, first: int, last: int, runner, *, progress: bool = False, token: str | None = None
    ) -> str:
        """Train runs ``first`` … ``last`` (and their λ̂) unless another writer has them (the claim
        protocol of :meth:`~tms_bayes.store.rundir.RunDir.claimed`): "done", "held" or "finished"."""
        key = self.name(first, last)
        with self.rundir.claimed(key, token) as taken:
            if taken:
                return taken
            part = runner.run(self.settings, np.arange(first, last + 1), self.epochs_at, self.init)
            part.attrs.update(_attrs(self.settings), runs_from=first, runs_to=last)
            self.rundir.commit(key, {f"parts/{key}.nc": lambda path, part=part: write_netcdf(path, part)})
            return "done"

    def combine(self, log=print) -> xr.Dataset:
        """Every batch joined over ``run`` and written to ``dynamics.nc`` (derived: rebuilt each time);
        a ValueError naming the batches that are not finished (another process may be running them)."""
        self.rundir.refresh()
        missing = [k for k in self.batches if not self.rundir.done(k)]
        if missing:
            raise ValueError(
                f"{self.out}: {len(missing)} batches of runs are not finished ({', '.join(missing)}; another "
                "process may be running them); run again once it is done to combine them"
            )
        parts = []
        for key in self.batches:
            with open_dataset(self.rundir.path(key)) as f:
                parts.append(f.load())
        ds = xr.concat(parts, dim="run")
        ds.attrs = _attrs(self.settings)  # not the first part's runs_from/runs_to
        write_netcdf(self.out / "dynamics.nc", ds)
        if log:
            log(
                f"wrote {self.out / 'dynamics.nc'} ({self.settings.runs} runs x "
                f"{len(self.epochs_at)} checkpoints)"
            )
        return ds

    def run(self, progress: bool = True, log=print) -> "DynamicsRun":
        """Run every pending batch in this process, each written when it finishes (then
        :meth:`combine`)."""
        from tqdm.auto import tqdm

        todo = self.prepare(log)
        runner = self.runner()
        bar = tqdm(total=self.settings.runs, desc="dynamics", unit="run", disable=not progress)
        bar.update(self.settings.runs - sum(last - first + 1 for first, last in todo))
        for first, last in todo:
            self.statuses[self.name(first, last)] = status = self.run_job(first, last, runner)
            if status == "held" and log:
                log(f"{self.name(first, last)} is being run by another process; skipped here")
            bar.update(last - first + 1)
        bar.close()
        self.compilations, self.timings = runner.compilations, runner.timings
        return self


class _BatchRunner:
    """Runs batches through :func:`_run_batch`; JAX compiles its programs on the first batch of a shape
    and keeps them (``compilations``: batches that may have compiled, i.e. the first)."""

    def __init__(self):
        self.compilations, self.timings = 0, {}

    def run(self, settings, run_ids, epochs_at, init) -> xr.Dataset:
        import time

        t0 = time.perf_counter()
        part = _run_batch(settings, run_ids, epochs_at, init)
        if not self.compilations:
            self.compilations, self.timings = 1, {"first_batch_s": time.perf_counter() - t0}
        return part


def run_dynamics(
    settings: DynamicsSettings, out, *, progress: bool = True, log=print, init=None
) -> xr.Dataset:
    """Run (or resume) the experiment into directory ``out`` (:class:`DynamicsRun`); returns the combined
    Dataset, also written to ``out/dynamics.nc``.  ``init`` = (W0, b0): start every run there instead of
    the protocol's random k-gon."""
    return DynamicsRun(settings, out, init).run(progress=progress, log=log).combine(log)


def load_dynamics(path) -> xr.Dataset:
    """Open ``dynamics.nc`` (or a directory holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "dynamics.nc"
    if not p.exists():
        raise ValueError(f"no dynamics results at {path} (expected dynamics.nc)")
    with open_dataset(p) as f:
        return f.load()
