"""Work-normalised precision of tms-bayes' data-tempered SMC: wall time × variance of log Z.

``--repeats`` independent runs (seeds 0, 1, …) of the same SMC on one fixed TMS dataset (c = 6, the
default sweep's seed-0 data) along the data path to n = max(``--grid``), for each parameterisation in
``--gauges`` (the unfixed W, or the SO(2) gauge of ``models.tms.tms_model``: the same evidence, see its
docstring).  Printed per parameterisation and grid point: the mean and the standard deviation of log Z
over the runs, the mean wall time per run (the model is converted once, as in a sweep; what an engine
compiles for each run is inside its runs' wall time; ``first s``: the first run alone), wall × var(log Z) — the work one run
needs for unit variance: lower is better — and per stage the mean HMC acceptance, the ESS after
reweighting and the number of stages.

To compare engines, run this script once against each version of the package, e.g. an older
checkout with ``PYTHONPATH=/path/to/old/checkout`` (it only uses APIs that older versions have; the
gauge needs a version with ``tms_model(gauge=…)``).

    python benchmarks/smc_efficiency.py [--repeats 8] [--particles 512] [--grid 100,300,600]
        [--vary mcmc_steps=3,6] [--vary cess_target=0.5,0.8]
        [--gauges none,so2]
"""

from __future__ import annotations

import argparse
import inspect
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import tms_bayes  # noqa: E402

if hasattr(tms_bayes, "configure"):
    tms_bayes.configure()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--particles", type=int, default=512)
    ap.add_argument("--grid", default="100,300,600")
    ap.add_argument("--gauges", default="none,so2")
    ap.add_argument("--label", default="", help="a name for this engine in the printout")
    ap.add_argument("--mass-clusters", default="1", help="SMCSettings.mass_clusters values to compare")
    ap.add_argument("--shards", type=int, default=2, help="SMCSettings.shards (versions that have it)")
    ap.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="an SMCSettings field and the values to compare (repeatable: every combination is run)",
    )
    args = ap.parse_args()
    from tms_bayes.inference.compile import compile_model
    from tms_bayes.inference.smc import SMCSettings, mask_path, prior_particles, run_smc
    from tms_bayes.models.data import tms_inputs
    from tms_bayes.models.tms import tms_model

    grid = [int(v) for v in args.grid.split(",")]
    X = tms_inputs(max(grid), 6, seed=0)
    clusters = [int(k) for k in args.mass_clusters.split(",")]
    has_shards = hasattr(SMCSettings(), "shards")  # older versions have neither shards nor mass clusters
    varied = _varied(args.vary, SMCSettings)
    variants = []  # every arm's settings built (and so validated) before the first run
    for gauge in args.gauges.split(","):
        for k in clusters:
            for vary in varied:
                extra = {"mass_clusters": k, "shards": args.shards} if has_shards else {}
                try:
                    settings = SMCSettings(**{"particles": args.particles, **extra, **vary})
                except (TypeError, ValueError) as e:
                    raise SystemExit(f"smc_efficiency: {e}") from None
                label = gauge + (f"/{k}" if k != 1 else "") + "".join(f" {a}={b}" for a, b in vary.items())
                variants.append((gauge, label, settings))
    print(
        f"engine {args.label or tms_bayes.__file__}; TMS c=6, grid {grid}, {args.particles} particles, {args.repeats} runs"
    )
    print(
        f"{'gauge/K settings':<34}{'n':>6}{'mean log Z':>12}{'sd log Z':>10}{'wall s/run':>11}{'first s':>8}{'wall×var':>10}{'accept':>8}{'ESS/P':>7}{'stages':>8}"
    )
    for gauge, label, settings in variants:
        if gauge != "none" and "gauge" not in inspect.signature(tms_model).parameters:
            print(f"{label:<34} (this version has no gauge)")
            continue
        kwargs = {} if gauge == "none" else {"gauge": gauge}
        model = tms_model(X, **kwargs)
        logz, walls, acc, ess, stages = [], [], [], [], []
        cm = compile_model(model)  # once, as a sweep does; whatever an engine compiles per run is timed
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            x0 = prior_particles(model, cm, settings.particles, seed=seed)
            res = run_smc(cm, mask_path(cm.data), grid, x0, settings=settings, seed=seed, progress=False)
            walls.append(time.perf_counter() - t0)
            logz.append(res.log_evidence)
            acc.append(np.nanmean(res.stages["acceptance"]))
            ess.append(np.mean(res.stages["ess"]) / settings.particles)
            stages.append(len(res.stages["s"]))
        logz = np.array(logz)
        wall = float(np.mean(walls))
        for i, n in enumerate(grid):
            var = float(np.var(logz[:, i], ddof=1))
            print(
                f"{label:<34}{n:>6}{logz[:, i].mean():>12.3f}{np.sqrt(var):>10.3f}{wall:>11.1f}{walls[0]:>8.1f}{wall * var:>10.3f}"
                f"{np.mean(acc):>8.3f}{np.mean(ess):>7.3f}{np.mean(stages):>8.1f}",
                flush=True,
            )


def _varied(specs, settings_cls) -> list[dict]:
    """Every combination of the ``--vary NAME=V1,V2`` values, each as SMCSettings keyword arguments."""
    fields = settings_cls.__dataclass_fields__
    combos = [{}]
    for spec in specs:
        name, _, values = spec.partition("=")
        if name not in fields or not values:
            raise SystemExit(f"--vary {spec!r}: expected NAME=V1,V2 with NAME one of {', '.join(fields)}")
        kind = type(getattr(settings_cls(), name))
        if kind not in (int, float):
            raise SystemExit(
                f"--vary {spec!r}: only numeric settings can be varied ({name} is {kind.__name__})"
            )
        try:
            combos = [{**c, name: kind(v)} for c in combos for v in values.split(",")]
        except ValueError:
            raise SystemExit(f"--vary {spec!r}: {name} takes {kind.__name__} values") from None
    return combos


if __name__ == "__main__":
    main()
