"""Free energy per phase, measured by restricted SMC, against the Laplace expansion (issue 13).

On the population TMS model (c = 6, energy n L, no dataset noise) each phase's free energy
F_n(W_α) = −log ∫_{W_α} φ e^{−nL} is estimated by ``--repeats`` independent SMC runs restricted to the
phase's region (tms_bayes.inference.phase_smc), and set beside the Laplace / Morse–Bott expansion
with every O(1) term (tms_bayes.theory.laplace) and the paper's convention.  Printed: F₅ − F₆ and
F₅₊ − F₆ (mean ± SE over repeats) with both theories and the residuals, then each phase's own
residual F_measured − F_Laplace, and the wall time per run.

    python benchmarks/phase_free_energy.py [--repeats 8] [--particles 2048] [--steps 30] [--cess 0.8]
        [--n 300,1000,3000,10000,30000] [--out results/phase_free_energy.csv]

With ``--crossover-n 60,80,...`` it measures instead where F₅ = F₆ on the population model: the mean
F₅ − F₆ over repeats on that grid, its sign change, and a bootstrap interval over repeats, beside
both conventions' crossovers.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def st_from(args):
    from tms_bayes.inference.phase_smc import RestrictedSettings
    from tms_bayes.inference.smc import SMCSettings

    return RestrictedSettings(
        smc=SMCSettings(particles=args.particles, mcmc_steps=args.steps, cess_target=args.cess), dead_tol=args.dead_tol
    )


def crossover(args, st) -> None:
    from tms_bayes import theory
    from tms_bayes.inference.phase_smc import population_phase_free_energies
    from tms_bayes.theory.laplace import sign_changes

    grid = [int(v) for v in args.crossover_n.split(",")]
    t0 = time.perf_counter()
    ds = population_phase_free_energies(
        6, ["5", "6"], grid, repeats=args.repeats, settings=st, progress=False
    )
    d = (ds.free_energy.sel(phase="5") - ds.free_energy.sel(phase="6")).values  # (repeat, n)
    cat = theory.critical_points(6)
    lap = (ds.laplace.sel(phase="5") - ds.laplace.sel(phase="6")).values
    print(
        f"F_5 − F_6 on the population model, {args.repeats} restricted SMC runs per phase ({time.perf_counter() - t0:.0f} s)"
    )
    print(f"{'n':>6}{'measured':>10}{'± SE':>7}{'Laplace':>10}")
    for i, n in enumerate(grid):
        print(f"{n:>6}{d[:, i].mean():>10.2f}{d[:, i].std(ddof=1) / np.sqrt(len(d)):>7.2f}{lap[i]:>10.2f}")
    point = sign_changes(grid, d.mean(0))
    rng = np.random.default_rng(0)
    boots = [sign_changes(grid, d[rng.integers(0, len(d), len(d))].mean(0)) for _ in range(2000)]
    last = np.array([b[-1] for b in boots if b])
    lo, hi = np.quantile(last, [0.025, 0.975]) if last.size else (np.nan, np.nan)
    print(
        f"measured 5 -> 6 crossover(s): {', '.join(f'{x:.1f}' for x in point) or 'none on the grid'}"
        f"  (last one: 95% bootstrap interval over repeats [{lo:.1f}, {hi:.1f}])"
    )
    lap_roots = ", ".join(f"{r['n']:.1f}" for r in theory.crossovers(cat, "5", "6", convention="laplace"))
    print(f"Laplace: {lap_roots}; paper: {theory.crossover(cat, '5', '6'):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--particles", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=30, help="HMC moves per SMC stage")
    ap.add_argument("--cess", type=float, default=0.8, help="conditional-ESS target of the adaptive steps")
    ap.add_argument("--n", default="300,1000,3000,10000,30000")
    ap.add_argument("--phases", default="5,5+,6")
    ap.add_argument("--out", default=None, help="CSV of every run (optional)")
    ap.add_argument("--crossover-n", default=None, help="measure the 5 -> 6 crossover on this grid instead")
    ap.add_argument("--dead-tol", type=float, default=0.0, help="region rule: dead-column tolerance (default 0, the flat region)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)

    from tms_bayes import theory
    from tms_bayes.inference.phase_smc import population_phase_free_energies

    if args.crossover_n:
        return crossover(args, st_from(args))
    grid = [int(v) for v in args.n.split(",")]
    phases = [p.strip() for p in args.phases.split(",")]
    st = st_from(args)
    t0 = time.perf_counter()
    ds = population_phase_free_energies(6, phases, grid, repeats=args.repeats, settings=st, progress=False)
    total = time.perf_counter() - t0
    cat = theory.critical_points(6)
    paper = theory.phase_free_energies(cat, phases, grid, convention="paper")
    print(
        f"restricted SMC: {args.repeats} runs per phase, {args.particles} particles, {args.steps} HMC moves per stage, "
        f"CESS {args.cess}; {total:.0f} s in total, {float(ds.wall_time_s.mean()):.1f} s per run"
    )
    print()
    ref = "6" if "6" in phases else phases[-1]
    for a in [p for p in phases if p != ref]:
        F = ds.free_energy.sel(phase=a) - ds.free_energy.sel(phase=ref)  # (repeat, n)
        mean, se = F.mean("repeat").values, F.std("repeat", ddof=1).values / np.sqrt(args.repeats)
        lap = (ds.laplace.sel(phase=a) - ds.laplace.sel(phase=ref)).values
        pap = (paper.sel(phase=a) - paper.sel(phase=ref)).values
        print(f"F_{a} − F_{ref}:")
        print(
            f"{'n':>7}{'measured':>11}{'± SE':>7}{'Laplace':>10}{'residual':>10}{'paper':>10}{'residual':>10}"
        )
        for i, n in enumerate(grid):
            print(
                f"{n:>7}{mean[i]:>11.2f}{se[i]:>7.2f}{lap[i]:>10.2f}{mean[i] - lap[i]:>10.2f}{pap[i]:>10.2f}{mean[i] - pap[i]:>10.2f}"
            )
        print()
    print("each phase: F_measured − F_Laplace (mean ± SE over repeats)")
    print(f"{'n':>7}" + "".join(f"{p:>16}" for p in phases))
    for i, n in enumerate(grid):
        cells = "".join(
            f"{float(ds['mean'].sel(phase=p)[i] - ds.laplace.sel(phase=p)[i]):>10.2f} ± {float(ds.se.sel(phase=p)[i]):.2f}"
            for p in phases
        )
        print(f"{n:>7}{cells}")
    if args.out:
        from pathlib import Path

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        ds.free_energy.to_dataframe().to_csv(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
