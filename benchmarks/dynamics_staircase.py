"""How often SGD makes consecutive transitions (the Growth-and-Form staircase 4++− → 4+ → 5), over a
grid of initial bias scales.

For each ``init_bias_std`` in the grid, ``--runs`` SGD runs of the default protocol (n = 1000, batch 20,
lr 0.005, 4-gon start of norm 0.9 + N(0, 0.01²) on W) are trained without λ̂ and analysed
(plateaus → catalogue → sequences, ``tms_bayes.analysis.dynamics``).  Printed per scale: how many runs
visit a φ− phase, how many make ≥ 2 consecutive transitions, and the most frequent sequences.  With
``--bah SCALE`` the runs at that scale are repeated with λ̂ along the trajectories and the BAH is checked
on their consecutive transitions (ΔL/Δλ increasing).  Results are kept under ``--out`` (one run
directory per scale, resumable).

Usage:  python benchmarks/dynamics_staircase.py [--scales 0.01,0.1,0.2,0.3,0.5] [--runs 64]
        [--epochs 4500] [--init-k 4] [--bah 0.3] [--out results/staircase]
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from pathlib import Path

warnings.filterwarnings("ignore")

from tms_bayes.analysis.dynamics import (  # noqa: E402
    bah_check,
    bah_summary,
    match_plateaus,
    trajectory_table,
)
from tms_bayes.inference.dynamics import DynamicsSettings, run_dynamics  # noqa: E402


def analyse(ds):
    plateaus = match_plateaus(ds)
    seqs = trajectory_table(plateaus)
    return plateaus, seqs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scales", default="0.01,0.1,0.2,0.3,0.5")
    p.add_argument("--runs", type=int, default=64)
    p.add_argument("--epochs", type=int, default=4500)
    p.add_argument("--init-k", type=int, default=4, help="start at a k-gon (2: devinterp's noisy 2-gon)")
    p.add_argument("--bah", type=float, default=None, help="repeat this scale with λ̂ and check the BAH")
    p.add_argument("--out", default="results/staircase")
    a = p.parse_args(argv)
    out = Path(a.out)
    print(f"{a.runs} runs per scale, {a.epochs} epochs, {a.init_k}-gon start, default protocol otherwise")
    print(f"{'bias std':>9}{'runs':>6}{'φ− visited':>12}{'≥2 transitions':>16}   most frequent sequences")
    for scale in (float(s) for s in a.scales.split(",") if s.strip()):
        s = DynamicsSettings(runs=a.runs, epochs=a.epochs, init_k=a.init_k, init_bias_std=scale, llc=False)
        ds = run_dynamics(s, out / f"k{a.init_k}_bias{scale:g}", progress=False, log=None)
        _, seqs = analyse(ds)
        phi = sum("-" in q for q in seqs.sequence)
        multi = int((seqs.transitions >= 2).sum())
        top = Counter(seqs.sequence).most_common(6)
        print(
            f"{scale:>9g}{len(seqs):>6}{phi:>12}{multi:>16}   " + "; ".join(f"{q} ({c})" for q, c in top),
            flush=True,
        )
    if a.bah is not None:
        s = DynamicsSettings(runs=a.runs, epochs=a.epochs, init_k=a.init_k, init_bias_std=a.bah)
        ds = run_dynamics(s, out / f"k{a.init_k}_bias{a.bah:g}_llc", progress=False, log=None)
        plateaus, seqs = analyse(ds)
        bah = bah_check(plateaus)
        print(f"\nBAH at bias std {a.bah:g} (λ̂ along the trajectories): {bah_summary(bah)}")
        multi = seqs[seqs.transitions >= 2]
        for _, row in multi.iterrows():
            b = bah[bah.run == row.run]
            print(
                f"  run {row.run}: {row.sequence}; ΔL/Δλ = "
                + ", ".join(f"{r:.4f}" for r in b.ratio)
                + f"; sources {', '.join(b.lambda_source)}; verdicts {', '.join(b.verdict)}"
            )


if __name__ == "__main__":
    main()
