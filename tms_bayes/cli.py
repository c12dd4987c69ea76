"""The ``tms-bayes`` command line.  Thin: it parses arguments and calls the library.

Any bad input ends with one line on stderr (``tms-bayes: error: …``) and exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

__all__ = ["main", "parse_grid"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message):  # noqa: D401  (argparse API)
        self.exit(2, f"tms-bayes: error: {message}\n")


def parse_grid(text: str) -> np.ndarray:
    """Parse ``start:stop:step`` (inclusive of stop) or a comma list ``100,200,400`` into sample sizes."""
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3 or parts[2] <= 0:
                raise ValueError
            start, stop, step = parts
            values = np.arange(start, stop + step / 2, step)
        else:
            values = np.array([float(p) for p in text.split(",") if p.strip()])
    except ValueError:
        raise ValueError(f"--n must be start:stop:step with step > 0 (e.g. 100:2000:50) or a comma list (e.g. 100,200,400), got {text!r}") from None
    if values.size == 0 or np.any(~np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"--n must give sample sizes n > 0, got {text!r}")
    return values


def parse_lambdas(text: str | None) -> dict[str, float]:
    """Parse ``--lambdas 4+=7.9,4=6.5`` into {phase: λ}."""
    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--lambdas must be a comma list of PHASE=VALUE (e.g. 4+=7.9,4=6.5), got {item!r}") from None
    return out


def _cmd_theory(args) -> int:
    from .analysis.theory_report import theory_report

    report = theory_report(c=args.c, r=args.r, phases=args.phases, n=parse_grid(args.n), out=args.out, lambdas=parse_lambdas(args.lambdas),
                           sigma=args.sigma if args.sigma is not None else math.sqrt(0.5), beta=args.beta, prior_std=args.prior_std)
    print(report.table())
    print()
    print(report.laplace_table())
    print()
    if report.steps is not None:
        print(report.steps_table())
        print()
    print("Every pairwise crossover (n where F_a = F_b; trusted = inside the range where the expansion holds):")
    print(report.pairwise_table())
    print()
    if report.crossovers:
        for x in report.crossovers:
            print(f"change of the most probable phase (paper convention): {x['from']} -> {x['to']} at n = {x['n_crit']:.1f}")
    else:
        print(f"no change of the most probable phase (paper convention) for n in {args.n}")
    for name, path in report.files.items():
        print(f"wrote {path}")
    return 0


def _sweep_settings(args):
    from .inference.sweep import SweepSettings

    return SweepSettings(
        model=args.model, n=tuple(int(v) for v in parse_grid(args.n)), seeds=args.seeds, chains=args.chains, tune=args.tune,
        draws=args.draws, backend=args.backend, chain_method=args.chain_method, max_tree_depth=args.max_tree_depth,
        target_accept=args.target_accept, prior_std=args.prior_std, c=args.c, r=args.r, sigma=args.sigma, beta=args.beta,
        theta=args.theta, vartheta=args.q_scale, d=args.d, seed_offset=args.seed_offset,
    )


def _default_out(args) -> str:
    return args.out or f"runs/{args.model}" + (f"-c{args.c}" if args.model == "tms" else "")


def _cmd_run(args) -> int:
    if args.model != "tms":
        raise ValueError(f"tms-bayes run analyses TMS sweeps (k-gon phases); for {args.model} use tms-bayes sweep")
    import time

    smc_settings = _smc_settings(args)  # validate the SMC options before any work
    split, start = {}, time.perf_counter()
    args.smc_out = f"{_default_out(args)}/smc"
    background = _start_smc_beside_nuts(args, smc_settings) if args.estimator == "both" else None
    args.smc_beside = background is not None
    try:
        if args.estimator in ("chains", "both"):
            t0 = time.perf_counter()
            _cmd_sweep(args)
            split["NUTS sweep"] = time.perf_counter() - t0
            args.run_dir = _default_out(args)
            sweep_out = args.out
            args.out = None
            t0 = time.perf_counter()
            _cmd_occupancy(args)
            split["chain-share analysis"] = time.perf_counter() - t0
            args.out = sweep_out
        if background is not None:
            t0 = time.perf_counter()
            split["SMC (second process, beside NUTS)"] = _finish_background(background)
            split["waiting for SMC"] = time.perf_counter() - t0
    finally:  # an error or Ctrl-C here: stop the SMC process too (its finished seeds are on disk)
        _stop_background(background)
    if args.estimator in ("smc", "both"):
        args.chains_run = _default_out(args) if args.estimator == "both" else None
        args.split = split
        _cmd_smc(args)  # with a background run: every seed is on disk, so this only analyses
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in split.items()) + f"; total {time.perf_counter() - start:.0f} s")
    return 0


def _smc_job(settings, smc_settings, out, repeats, results) -> None:
    """The SMC sweep of ``tms-bayes run`` in its own process (spawned: JAX does not survive a fork);
    puts ("ok", seconds) or ("error", type name, message) on ``results``."""
    import time

    from .inference.smc_sweep import run_smc_sweep

    from .analysis.smc_report import per_dataset_theory

    t0 = time.perf_counter()
    try:
        smc = run_smc_sweep(settings, smc_settings, out, repeats=repeats, progress=False, log=lambda msg: print(f"[smc] {msg}", flush=True))
        per_dataset_theory(smc)  # the per-dataset Laplace theory, cached for the report
        print(f"[smc] per-dataset theory for {len(smc.completed)} datasets done", flush=True)
        results.put(("ok", time.perf_counter() - t0))
    except Exception as exc:  # reported by the parent, which decides what to do
        results.put(("error", type(exc).__name__, str(exc)))


def _start_smc_beside_nuts(args, smc_settings):
    """On a CPU with ≥ 2 cores, start the SMC sweep in a second process while NUTS runs (each uses one
    core); None where that would not help (one core, or an accelerator that both would share)."""
    import multiprocessing
    import os

    from ._jax import jax

    if (os.cpu_count() or 1) < 2 or jax.default_backend() != "cpu" or args.no_parallel:
        return None
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_smc_job, args=(_sweep_settings(args), smc_settings, args.smc_out, args.smc_repeats, results), daemon=True)
    proc.start()
    print(f"SMC runs in a second process beside the NUTS sweep (results in {args.smc_out})", flush=True)
    return proc, results


def _finish_background(background) -> float:
    """Wait for the background SMC sweep and return its seconds; NaN where the process died without a
    word (the analysis step then runs the unfinished seeds itself, resuming from what is on disk).  A
    ``ValueError`` in the child is raised here (one line from the CLI)."""
    import queue

    proc, results = background
    while True:
        try:
            msg = results.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                print("tms-bayes: the SMC process stopped early; finishing its seeds here", file=sys.stderr)
                return float("nan")
    proc.join()
    if msg[0] == "ok":
        return msg[1]
    if msg[1] == "ValueError":
        raise ValueError(msg[2])
    raise RuntimeError(f"the SMC process failed: {msg[1]}: {msg[2]}")


def _stop_background(background) -> None:
    if background is None:
        return
    proc, results = background
    if proc.is_alive():
        proc.terminate()
        proc.join()
    results.close()
    results.join_thread()


def _smc_settings(args):
    from . import _validate
    from .inference.smc import SMCSettings

    _validate.integer("--smc-repeats", args.smc_repeats, minimum=1)
    return SMCSettings(particles=args.particles, cess_target=args.cess_target, mcmc_steps=args.mcmc_steps, leapfrog_steps=args.leapfrog_steps)


def _cmd_smc(args) -> int:
    import time

    from .experiments import smc as exp

    settings = _sweep_settings(args)
    smc_settings = _smc_settings(args)
    out = getattr(args, "smc_out", None) or args.out or f"runs/smc-c{args.c}"
    phases = [p.strip() for p in args.theory_phases.split(",") if p.strip()]
    chains = exp.chains_occupancy(args.chains_run, settings.n) if getattr(args, "chains_run", None) else None
    t0 = time.perf_counter()
    smc = exp.run(settings, smc_settings, out, repeats=args.smc_repeats, progress=not args.no_progress)
    split = getattr(args, "split", {})
    if not any(k.startswith("SMC (") for k in split):
        split["SMC"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = exp.analyse(smc, rule=_rule(args), phases=phases, chains=chains, progress=not args.no_progress)
    print(rep.occupancy_table(phases).to_string(index=False))
    for c in rep.crossovers:
        print(f"crossover 5 -> 6 ({c['kind']}): n = {c['n_crit']:.1f}  [{c['lower']:.1f}, {c['upper']:.1f}]")
    if rep.growth is not None:
        for p in rep.growth.phase.values:
            g = rep.growth.sel(phase=p)
            print(f"λ from free energy, phase {p}: {float(g['lambda']):.2f} ± {float(g.se):.2f} (theory {float(g.lambda_theory):g})")
    if getattr(args, "reference_n", None):
        ref = exp.pymc_reference(smc, args.reference_n)
        print(f"log Z at n = {args.reference_n}, seed 0: tms-bayes SMC {ref['ours']:.2f}; pm.sample_smc {ref['pymc']:.2f} "
              f"(chains {', '.join(f'{v:.2f}' for v in ref['pymc_chains'])}; {ref['wall_time_s']:.0f} s)")
    print(f"report: {out}/report/report.md")
    split["SMC analysis (phase minima, per-dataset theory, report)"] = time.perf_counter() - t0
    return 0


def _cmd_compare(args) -> int:
    from .analysis.compare import compare_runs

    runs = {}
    for item in args.runs:
        label, sep, path = item.rpartition("=")  # the last '=': labels such as "σ² = 1/2=runs/a" keep theirs
        runs[label if sep else item] = path if sep else item
    comp = compare_runs(runs, args.out)
    print(comp.table().to_string(index=False))
    for path in comp.files.values():
        print(f"wrote {path}")
    return 0


def _cmd_occupancy(args) -> int:
    from .experiments.occupancy import occupancy_report
    from .inference.sweep import load_sweep

    if load_sweep(args.run_dir).settings.model.startswith("relu"):
        from .experiments.relu import relu_sweep_report

        rep = relu_sweep_report(args.run_dir, args.out, progress=not getattr(args, "no_progress", False))
        print(rep["occupancy"].share.to_pandas().round(3).to_string())
        for path in rep["files"].values():
            print(f"wrote {path}")
        return 0
    thresholds = _rule(args)
    report = occupancy_report(
        args.run_dir, args.out, theory_phases=[p.strip() for p in args.theory_phases.split(",") if p.strip()],
        thresholds=thresholds, max_tsne_samples=args.tsne_samples, progress=not getattr(args, "no_progress", False),
    )
    print()
    print(report.text())
    for path in report.files.values():
        print(f"wrote {path}")
    return 0


def _cmd_sweep(args) -> int:
    import time

    import pandas as pd

    from .analysis.diagnostics import format_table
    from .experiments.posterior_sweep import run

    settings = _sweep_settings(args)
    out = _default_out(args)
    t0 = time.perf_counter()
    # beside the SMC process each sampler keeps one core; alone, chains shard over every core
    sweep = run(settings, out, progress=not args.no_progress, devices=1 if getattr(args, "smc_beside", False) else None)
    wall = time.perf_counter() - t0
    print(format_table(pd.read_csv(sweep.out / "diagnostics.csv")))
    print(f"{len(sweep.completed)} jobs in {sweep.out} ({wall:.1f} s this run; compile {sweep.timings.get('compile_s', 0):.1f} s, {sweep.compilations} compiled programs)")
    return 0


def _cmd_wbic(args) -> int:
    from .experiments import wbic

    if args.beta is not None:
        raise ValueError("tms-bayes wbic sets β itself (1/log n and --beta-ratio/log n); drop --beta")
    settings = wbic.WbicSettings(sweep=_sweep_settings(args), beta_ratio=args.beta_ratio)
    out = args.out or f"runs/wbic-{args.model}"
    wbic.run(settings, out, progress=not args.no_progress)
    ds = wbic.analyse(out)
    files = wbic.report(ds, out)
    print(ds[["wbic", "wbic_mcse", "lambda", "lambda_se"]].to_dataframe().round(3).to_string())
    for path in files.values():
        print(f"wrote {path}")
    return 0


def _cmd_criteria(args) -> int:
    from pathlib import Path

    from .analysis.criteria import sweep_criteria
    from .store.atomic import write_text
    from .inference.sweep import load_sweep

    ds = sweep_criteria(load_sweep(args.run_dir))
    frame = ds.drop_vars([v for v in ds.data_vars if v.startswith("wbic")]).to_dataframe().reset_index()
    path = write_text(Path(args.out or args.run_dir) / "criteria.csv", frame.to_csv(index=False, float_format="%.6g"))
    print(frame.round(3).to_string(index=False))
    if ds.attrs["tempered"]:
        print("note: these runs are tempered (β ≠ 1): WAIC and LOO are those of the tempered posterior, not Watanabe's criteria")
    print(f"wrote {path}")
    return 0


def _cmd_llc(args) -> int:
    from .experiments import llc_catalogue as exp

    st = exp.LlcSettings(c=args.c, phases=tuple(args.phase.split(",")), data=args.data, n=args.n, refine=args.refine, sampler=args.sampler,
                         chains=args.chains, draws=args.draws, tune=args.tune, gamma=args.gamma, nbeta=args.nbeta, step_size=args.step_size,
                         batch_size=args.batch_size, seed=args.seed)
    print(f"λ̂ at c={st.c}, {st.data} loss, n={st.n}, γ={st.gamma:g}, {st.sampler}, {st.chains} chains")
    ds, idatas = exp.run(st)
    print(exp.table(ds))
    if args.out:
        files = exp.report(ds, idatas, args.out)
        print(f"wrote {files['csv']} and one InferenceData per phase")
    return 0


def _cmd_dynamics(args) -> int:
    from .analysis.dynamics_report import dynamics_report
    from .inference.dynamics import DynamicsSettings, run_dynamics

    settings = DynamicsSettings(
        runs=args.runs, c=args.c, n=args.n, batch_size=args.batch_size, lr=args.lr, epochs=args.epochs, optimizer=args.optimizer,
        init_k=args.init_k, init_norm=args.init_norm, init_noise=args.init_noise, init_bias_std=args.init_bias_std, checkpoints=args.checkpoints,
        llc=not args.no_llc, llc_eps=args.llc_eps, llc_gamma=args.llc_gamma, llc_steps=args.llc_steps, llc_chains=args.llc_chains,
        llc_burn_in=args.llc_burn_in if args.llc_burn_in is not None else min(100, args.llc_steps // 5), nbeta=args.nbeta, seed=args.seed, run_batch=args.run_batch,
    )  # fmt: skip
    out = args.out or f"runs/dynamics-c{args.c}"
    ds = run_dynamics(settings, out, progress=not args.no_progress)
    th = _rule(args)
    rep = dynamics_report(ds, out, thresholds=th, slope_tol=args.slope_tol, min_span=args.min_span, loss_tol=args.loss_tol)
    print(rep.sequences.final.value_counts().to_string() if len(rep.sequences) else "no plateaus found")
    print(rep.transitions.to_string(index=False) if len(rep.transitions) else "no transitions observed")
    s = rep.summary
    print(f"BAH: {s['transitions']} transitions, {s['pass']} pass, {s['fail']} fail, {s['inconclusive']} inconclusive; ΔL/Δλ increased in {s['ratio_increases']}/{s['consecutive_pairs']} consecutive pairs")
    print(f"report: {rep.files['report']}")
    return 0


def _number(text: str) -> float:
    """A float, or a multiple of π such as ``pi/2``, ``2pi/3``, ``0.5*pi``."""
    import math
    import re

    t = text.strip().lower().replace("π", "pi").replace(" ", "")
    m = re.fullmatch(r"([0-9.]*)\*?pi(?:/([0-9.]+))?", t)
    if m:
        return (float(m.group(1)) if m.group(1) else 1.0) * math.pi / (float(m.group(2)) if m.group(2) else 1.0)
    return float(t)


def parse_values(text: str | None, name: str) -> tuple[float, ...] | None:
    """Parse ``start:stop:step`` (inclusive) or a comma list of truth values (``pi/2`` allowed)."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (_number(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            return tuple(float(v) for v in np.round(np.arange(start, stop + step / 2, step), 10))
        values = tuple(_number(x) for x in text.split(",") if x.strip())
        if not values:
            raise ValueError
        return values
    except ValueError:
        raise ValueError(f"{name} must be start:stop:step or a comma list of numbers (pi allowed, e.g. 1.1,1.26,pi/2), got {text!r}") from None


_LLC_DEFAULTS = {"pt1": "1.1,1.26,pi/2", "pt2": "1.0,2.0"}


def _cmd_relu(args) -> int:
    import math
    import time

    from .experiments import relu as exp
    from .inference.truth_sweep import TruthSweepSettings

    values = parse_values(args.values, "--values")
    llc_text = _LLC_DEFAULTS[args.experiment] if args.llc_values is None else args.llc_values
    settings = TruthSweepSettings(
        experiment=args.experiment, values=values, trials=args.trials, n=args.n, tune=args.tune, draws=args.draws, target_accept=args.target_accept,
        max_tree_depth=args.max_tree_depth, prior_std=args.prior_std, init_scale=args.init_scale, beta=args.beta, d=args.d, seed_offset=args.seed_offset,
    )  # fmt: skip
    llc_values = exp.check_llc_values(settings, () if llc_text.strip().lower() == "none" else parse_values(llc_text, "--llc-values"))
    t0 = time.perf_counter()
    sweep = exp.run(settings, args.out or f"runs/relu-{args.experiment}", progress=not args.no_progress)
    print(f"sweep: {len(sweep.completed)} values in {sweep.out} ({time.perf_counter() - t0:.1f} s this run)")
    llc_kwargs = {"draws": args.llc_draws, **({"step_size": args.llc_step_size} if args.llc_sampler == "sgld" else {})}
    rep = exp.analyse(sweep, epsilon=args.epsilon, z_max=args.z_max, llc_values=llc_values, llc_sampler=args.llc_sampler, llc_kwargs=llc_kwargs,
                      coarse_grain=not args.no_coarse_grain, progress=not args.no_progress)
    print(rep.table().to_string(index=False))
    t = rep.transition
    sym = "θ" if args.experiment == "pt1" else "ϑ"
    if "critical" in t:
        print(f"{sym}_c = {t['critical']:.4f}  95% interval [{t['lower']:.4f}, {t['upper']:.4f}]" if math.isfinite(t["critical"]) else "no overtaking of the non-degenerate phase on this grid")
    else:
        print(f"annihilation phase last present at {sym} = {t['last_present']:.3g}, absent from {sym} = {t['first_absent']:.3g}")
    print(f"dropped trials: {int((~rep.trials.kept).sum())} of {len(rep.trials)}")
    if rep.llc is not None:
        print(rep.llc[["llc", "llc_se"]].to_dataframe().to_string())
    print(f"report: {sweep.out}/report/report.md")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="tms-bayes", description="Bayesian and dynamical phase transitions in singular models (TMS, two-layer ReLU).")
    p.add_argument("--version", action="version", version=f"tms-bayes {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("theory", help="exact TMS theory: critical-point catalogue, energy levels, theoretical occupancy")
    t.add_argument("--c", type=int, default=6, help="number of features c (default 6)")
    t.add_argument("--r", type=int, default=2, help="hidden dimension r (default 2)")
    t.add_argument("--phases", default="5,5+,6", help="comma list of phases for the occupancy curves (default 5,5+,6)")
    t.add_argument("--n", default="100:2000:50", help="sample sizes, start:stop:step inclusive or a comma list (default 100:2000:50)")
    t.add_argument("--lambdas", default=None, help="λ estimates for phases whose λ theory does not give, e.g. 4+=7.9,4=6.5")
    t.add_argument("--sigma", type=float, default=None, help="likelihood std σ: energy n_eff L with n_eff = nβ/(2σ²) (default √(1/2))")
    t.add_argument("--beta", type=float, default=1.0, help="likelihood temperature β (default 1)")
    t.add_argument("--prior-std", type=float, default=1.0, help="prior std of every parameter (default 1; the paper's c_α needs 1)")
    t.add_argument("--out", default="results/theory", help="output directory (default results/theory)")
    t.set_defaults(func=_cmd_theory)

    s = sub.add_parser("sweep", help="fit posteriors over a range of n (NUTS, compiled once per sweep); resumable")
    _add_sweep_args(s)
    s.set_defaults(func=_cmd_sweep)

    run = sub.add_parser("run", help="the main job: sweep + occupancy + report for TMS at c = 6 with built-in defaults")
    _add_sweep_args(run)
    _add_occupancy_args(run)
    run.add_argument("--no-parallel", action="store_true", help="with both estimators: run SMC after NUTS, not beside it on a second core")
    run.add_argument("--estimator", default="both", choices=["chains", "smc", "both"],
                     help="chains: NUTS chain shares; smc: posterior mass by data-tempered SMC; both (default): both, against the finite-n theory")
    _add_smc_args(run)
    run.set_defaults(func=_cmd_run)

    sm = sub.add_parser("smc", help="data-tempered SMC across n: posterior mass per phase, free energies, λ from F_n's growth")
    _add_sweep_args(sm)
    sm.set_defaults(seeds=4)
    _add_occupancy_args(sm)
    _add_smc_args(sm)
    sm.add_argument("--chains-run", default=None, help="a NUTS sweep directory on the same grid (with occupancy.nc) to compare chain shares")
    sm.add_argument("--reference-n", type=int, default=None, help="also run pm.sample_smc at this n (seed 0) and compare log Z")
    sm.set_defaults(func=_cmd_smc)

    lc = sub.add_parser("llc", help="local learning coefficient λ̂ at catalogue critical points (NUTS or SGLD)")
    lc.add_argument("--c", type=int, default=6)
    lc.add_argument("--phase", default="5", help="phase name(s), comma-separated, or 'all' for the whole catalogue (default 5)")
    lc.add_argument("--data", default="population", choices=["population", "empirical"], help="population: closed-form L at sample size n (no dataset noise); empirical: L_n on a dataset of n rows (default population)")
    lc.add_argument("--n", type=int, default=100000, help="sample size n (default 100000; nβ = n/log n)")
    lc.add_argument("--refine", action="store_true", help="empirical: first move w* to the nearest local minimum of L_n")
    lc.add_argument("--sampler", default="nuts", choices=["nuts", "sgld"])
    lc.add_argument("--chains", type=int, default=4)
    lc.add_argument("--draws", type=int, default=500)
    lc.add_argument("--tune", type=int, default=300, help="NUTS adaptation steps (default 300)")
    lc.add_argument("--gamma", type=float, default=1.0, help="localisation strength γ (default 1)")
    lc.add_argument("--nbeta", type=float, default=None, help="nβ (default n/log n)")
    lc.add_argument("--step-size", type=float, default=1e-3, help="SGLD step ε (default 1e-3)")
    lc.add_argument("--batch-size", type=int, default=None, help="SGLD minibatch size (default: full batch)")
    lc.add_argument("--seed", type=int, default=0)
    lc.add_argument("--out", default=None, help="directory for llc.csv and the InferenceData of each estimate")
    lc.set_defaults(func=_cmd_llc)

    d = sub.add_parser("dynamics", help="SGD training runs through critical points: plateaus, transitions, λ̂ along trajectories, BAH check")
    d.add_argument("--runs", type=int, default=64, help="training runs, vectorised (default 64)")
    d.add_argument("--c", type=int, default=6)
    d.add_argument("--n", type=int, default=1000, help="training samples per run (default 1000)")
    d.add_argument("--batch-size", type=int, default=20)
    d.add_argument("--lr", type=float, default=0.005)
    d.add_argument("--epochs", type=int, default=4500)
    d.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    d.add_argument("--init-k", type=int, default=4, help="start at a k-gon (default 4)")
    d.add_argument("--init-norm", type=float, default=0.9)
    d.add_argument("--init-noise", type=float, default=0.01)
    d.add_argument("--init-bias-std", type=float, default=0.01)
    d.add_argument("--checkpoints", type=int, default=40, help="log-spaced checkpoints (default 40)")
    d.add_argument("--no-llc", action="store_true", help="skip λ̂ at the checkpoints")
    d.add_argument("--llc-eps", type=float, default=1e-3)
    d.add_argument("--llc-gamma", type=float, default=1.0)
    d.add_argument("--llc-steps", type=int, default=500)
    d.add_argument("--llc-chains", type=int, default=2)
    d.add_argument("--llc-burn-in", type=int, default=None, help="SGLD steps dropped before averaging (default min(100, steps/5))")
    d.add_argument("--nbeta", type=float, default=None, help="nβ for λ̂ (default n/log n)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--run-batch", type=int, default=16, help="runs per saved batch (resume granularity, default 16)")
    d.add_argument("--slope-tol", type=float, default=0.02, help="plateau rule: max |dlog L/dlog t| (default 0.02)")
    d.add_argument("--min-span", type=float, default=2.0, help="plateau rule: min factor in steps (default 2)")
    d.add_argument("--loss-tol", type=float, default=0.005, help="matching: max |L − L_catalogue| (default 0.005)")
    d.add_argument("--out", default=None, help="output directory (default runs/dynamics-c<c>)")
    d.add_argument("--no-progress", action="store_true")
    _add_classifier_args(d)
    d.set_defaults(func=_cmd_dynamics)

    rl = sub.add_parser("relu", help="ReLU phase transitions: sweep the truth (pt1: θ, pt2: ϑ), phase fractions, critical value, λ̂ per phase")
    rl.add_argument("experiment", choices=["pt1", "pt2"], help="pt1: deforming to degeneracy (θ); pt2: weight annihilation (ϑ)")
    rl.add_argument("--values", default=None, help="truth values, start:stop:step or a comma list, pi allowed (default: SPEC 5's grid)")
    rl.add_argument("--trials", type=int, default=6, help="trials per value: one chain on its own dataset each (default 6)")
    rl.add_argument("--n", type=int, default=10000, help="samples per dataset (default 10000)")
    rl.add_argument("--tune", type=int, default=300)
    rl.add_argument("--draws", type=int, default=500)
    rl.add_argument("--target-accept", type=float, default=0.8)
    rl.add_argument("--max-tree-depth", type=int, default=10)
    rl.add_argument("--prior-std", type=float, default=1.0)
    rl.add_argument("--init-scale", type=float, default=2.0, help="initial points uniform(-s, s) (default 2)")
    rl.add_argument("--beta", type=float, default=None, help="tempering β (default 1/log n)")
    rl.add_argument("--d", type=int, default=None, help="model nodes (default 2 for pt1, 3 for pt2)")
    rl.add_argument("--seed-offset", type=int, default=0)
    rl.add_argument("--epsilon", type=float, default=None, help="phase radius ε (default 0.3 for pt1, 0.25 for pt2)")
    rl.add_argument("--z-max", type=float, default=1.5, help="drop trials whose mean L_n has |z| >= this (default 1.5)")
    rl.add_argument("--llc-values", default=None, help="values at which to estimate λ̂ per phase, or 'none' (default pt1: 1.1,1.26,pi/2; pt2: 1.0,2.0)")
    rl.add_argument("--llc-sampler", default="sgld", choices=["sgld", "nuts"])
    rl.add_argument("--llc-step-size", type=float, default=1e-4, help="SGLD step ε for λ̂ (default 1e-4)")
    rl.add_argument("--llc-draws", type=int, default=2000, help="λ̂ steps (SGLD) or draws (NUTS) per chain (default 2000)")
    rl.add_argument("--no-coarse-grain", action="store_true", help="skip the t-SNE + HDBSCAN comparison")
    rl.add_argument("--out", default=None, help="sweep directory (default runs/relu-<experiment>); the report goes to <out>/report")
    rl.add_argument("--no-progress", action="store_true")
    rl.set_defaults(func=_cmd_relu)

    cp = sub.add_parser("compare", help="runs of the main job side by side: the 5 -> 6 crossover by every estimator, F5 - F6 against n")
    cp.add_argument("runs", nargs="+", help="run directories of tms-bayes run (estimator smc or both), optionally LABEL=DIR (split at the last '=')")
    cp.add_argument("--out", default="results/compare", help="output directory (default results/compare)")
    cp.set_defaults(func=_cmd_compare)

    wb = sub.add_parser("wbic", help="WBIC per n (two sweeps at beta = 1/log n and a/log n) and Watanabe's two-temperature lambda")
    _add_sweep_args(wb)
    wb.set_defaults(n="100,200,400,800,1600", seeds=2)
    wb.add_argument("--beta-ratio", type=float, default=1.5, help="second temperature a/log n (default a = 1.5)")
    wb.set_defaults(func=_cmd_wbic)

    cr = sub.add_parser("criteria", help="WAIC and PSIS-LOO (and WBIC where beta = 1/log n) of every run of a sweep")
    cr.add_argument("run_dir", help="a sweep directory (tms-bayes sweep or run)")
    cr.add_argument("--out", default=None, help="where criteria.csv goes (default: the sweep directory)")
    cr.set_defaults(func=_cmd_criteria)

    o = sub.add_parser("occupancy", help="re-analyse an existing TMS sweep: phases, occupancy, t-SNE, report")
    o.add_argument("run_dir", help="a sweep directory (with manifest.json)")
    o.add_argument("--out", default=None, help="report directory (default: the sweep directory)")
    _add_occupancy_args(o)
    o.set_defaults(func=_cmd_occupancy)
    return p


def _add_sweep_args(p) -> None:
    p.add_argument("--model", default="tms", choices=["tms", "relu-pt1", "relu-pt2"], help="model (default tms)")
    p.add_argument("--c", type=int, default=6, help="TMS: features c (default 6)")
    p.add_argument("--r", type=int, default=2, help="TMS: hidden dimension r (default 2)")
    p.add_argument("--theta", type=float, default=1.26, help="relu-pt1: truth angle θ (default 1.26)")
    p.add_argument("--q-scale", type=float, default=1.5, help="relu-pt2: output weight ϑ of the (-1,0) node (default 1.5)")
    p.add_argument("--d", type=int, default=None, help="ReLU: model nodes (default 2 for pt1, 3 for pt2)")
    p.add_argument("--n", default="100:1200:100", help="sample sizes, start:stop:step inclusive or a comma list (default 100:1200:100)")
    p.add_argument("--seeds", type=int, default=4, help="datasets, one per seed (default 4)")
    p.add_argument("--chains", type=int, default=4, help="chains per (n, seed) (default 4)")
    p.add_argument("--tune", type=int, default=300, help="warm-up transitions per chain (default 300)")
    p.add_argument("--draws", type=int, default=300, help="kept transitions per chain (default 300)")
    p.add_argument("--backend", default="jax", choices=["jax", "pymc"], help="jax: compile-once blackjax NUTS; pymc: PyMC's pm.sample (default jax)")
    p.add_argument("--chain-method", default="sequential", choices=["sequential", "vectorized"], help="map chains with lax.map or vmap (default sequential)")
    p.add_argument("--max-tree-depth", type=int, default=10)
    p.add_argument("--target-accept", type=float, default=0.8)
    p.add_argument("--prior-std", type=float, default=1.0)
    p.add_argument("--sigma", type=float, default=None, help="likelihood σ (default √½ for TMS, 1 for ReLU)")
    p.add_argument("--beta", type=_beta_arg, default=None,
                   help="likelihood tempering β: a number or 'a/log n' (e.g. 1/log-n, WBIC's) (default 1 for TMS, 1/log n for ReLU)")
    p.add_argument("--seed-offset", type=int, default=0, help="first dataset seed (default 0)")
    p.add_argument("--out", default=None, help="sweep directory (default runs/<model>[-c<c>])")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _beta_arg(text: str):
    """--beta: a positive number, or 'a/log n' (spaces optional, '-' accepted for the space: 1/log-n)."""
    from .inference.sweep import parse_log_beta

    try:
        return float(text)
    except ValueError:
        try:
            return f"{parse_log_beta(text.replace('log-n', 'log n')):g}/log n"
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def _add_smc_args(p) -> None:
    p.add_argument("--particles", type=int, default=1024, help="SMC particles per seed (default 1024)")
    p.add_argument("--cess-target", type=float, default=0.5, help="SMC step size: conditional ESS target as a share of particles (default 0.5)")
    p.add_argument("--mcmc-steps", type=int, default=3, help="HMC moves per SMC stage (default 3)")
    p.add_argument("--leapfrog-steps", type=int, default=10, help="leapfrog steps per HMC move (default 10)")
    p.add_argument("--smc-repeats", type=int, default=3,
                   help="independent SMC runs on dataset 0 (default 3): R > 1 adds R − 1 runs whose spread is the sampler's alone")


def _add_occupancy_args(p) -> None:
    p.add_argument("--theory-phases", default="5,5+,6", help="phases for the theoretical curves (default 5,5+,6)")
    _add_classifier_args(p)
    p.add_argument("--tsne-samples", type=int, default=3000, help="draws embedded by t-SNE (default 3000)")


def _add_classifier_args(p) -> None:
    p.add_argument("--classifier", choices=("function", "threshold"), default="function",
                   help="phase rule: by what the columns do (default) or the old column-norm thresholds")
    p.add_argument("--dead-tol", type=float, default=0.4, help="function rule: a column whose outputs stay off up to this is dead (default 0.4)")
    p.add_argument("--vertex-norm", type=float, default=0.5, help="classifier: min column norm of a polygon vertex / of a φ− column (default 0.5)")
    p.add_argument("--zero-norm", type=float, default=0.25, help="threshold rule: max column norm of a zero column (default 0.25)")
    p.add_argument("--bias-tol", type=float, default=0.0, help="threshold rule: a zero column with bias above this is σ+ (default 0)")
    p.add_argument("--off-factor", type=float, default=1.0, help="threshold rule: a vertex with b < -off_factor·|W_j|² is switched off (default 1)")


def _rule(args):
    """The phase classifier chosen by the classifier options."""
    from .analysis.phases import rule_from_options

    return rule_from_options(args.classifier, dead_tol=args.dead_tol, vertex_norm=args.vertex_norm, zero_norm=args.zero_norm,
                             bias_tol=args.bias_tol, off_factor=args.off_factor)


def main(argv: list[str] | None = None) -> int:
    import warnings

    from ._devices import configure

    configure(strict=False)  # one XLA device per core before any JAX backend starts: chains shard across cores

    warnings.filterwarnings("ignore", message=".*BLAS.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        print(f"tms-bayes: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tms-bayes: interrupted; finished results are on disk and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
