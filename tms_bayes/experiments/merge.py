"""Merge posterior sweeps run apart — over different dataset seeds, on different machines or clusters —
into one sweep directory (``tms-bayes merge A B --out C``).

A run file depends only on n, its dataset seed and the job settings (every setting but ``seeds`` and
``seed_offset``: :data:`~tms_bayes.inference.sweep.JOB_RANGE`), and is named by its dataset seed, so
the runs of sweeps with equal job settings are runs of one larger sweep: the merged directory's
settings are the common ones with the seed range spanning every source (``seed_offset`` = the smallest
dataset seed, ``seeds`` = the span).  Each source file is checked (readable, its own n, dataset seed and
job settings) and copied byte for byte, atomically, then recorded, so the merged directory holds the
runs that one sweep over the whole range would have written, and its analysis is that sweep's (files
from directories written before run files left out the seed range keep their old range attrs).
Sources whose job settings differ are refused, listing the differences; a run present in several
sources is taken from the first; dataset seeds inside the span that no source has are left pending,
for the sweep command to fill (the message says how).  Interrupted, a merge resumes: finished copies are kept.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .._options import setting
from ..inference.sweep import JOB_RANGE, LEGACY, Sweep, SweepSettings, run_name
from ..store.atomic import atomic_write
from ..store.rundir import RunDir, file_problem, settings_differences
from . import Command

__all__ = ["MergeSettings", "merge", "main", "COMMAND"]


@dataclass(frozen=True)
class MergeSettings:
    """``tms-bayes merge``: the sweep directories to merge."""

    sources: tuple[str, ...] = setting(
        (),
        "sweep directories with equal settings except --seeds and --seed-offset",
        positional=True,
        nargs="+",
    )

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(str(s) for s in self.sources))


def _source(path) -> tuple[SweepSettings, dict[tuple[int, int], Path]]:
    """The settings of the sweep directory ``path`` and its finished runs {(n, dataset seed): file},
    read from each file's attrs (so that directories of any naming are read), each file checked."""
    settings = SweepSettings.from_dict(
        RunDir.existing_settings(path, "sweep", "a sweep directory (tms-bayes sweep or run)")
    )
    rundir = RunDir(path, "sweep", settings.to_dict(), "a sweep", legacy=LEGACY)
    runs = {}
    for s in range(settings.seeds):
        for n in settings.n:
            # directories written before files were named by dataset seed named them by seed index
            key = run_name(n, settings.data_seed(s) if rundir.extra.get("run_names") else s)
            if not rundir.done(key):
                continue
            file = rundir.path(key)
            job = {"n": n, "data_seed": settings.data_seed(s)}
            problem = file_problem(file, job, settings.job_settings())
            if problem:
                raise ValueError(
                    f"{file} is not the run n={n}, dataset seed {job['data_seed']} of {path} ({problem}); "
                    f"run the sweep on {path} again (it sets such files aside and redoes them), then merge"
                )
            runs[(n, job["data_seed"])] = file
    return settings, runs


def merge(sources, out, *, log=print) -> Sweep:
    """Merge the sweep directories ``sources`` into ``out`` (module docstring); returns the merged
    :class:`~tms_bayes.inference.sweep.Sweep` (``out`` may already hold an interrupted merge of the
    same sources: it is resumed)."""
    sources = [Path(s) for s in sources]
    if not sources:
        raise ValueError("merge needs at least one sweep directory")
    out = Path(out)
    for s in sources:
        if s.resolve() == out.resolve():
            raise ValueError(f"--out {out} is one of the sources; merge into a new directory")
    read = [_source(s) for s in sources]
    first = read[0][0].job_settings()
    for path, (settings, _) in zip(sources[1:], read[1:]):
        diffs = settings_differences(first, settings.job_settings(), (f"in {sources[0]}", f"in {path}"))
        if diffs:
            raise ValueError(
                f"{sources[0]} and {path} are sweeps of different settings ({'; '.join(diffs)}); only "
                f"sweeps that differ in {' and '.join('--' + k.replace('_', '-') for k in JOB_RANGE)} merge"
            )
    runs: dict[tuple[int, int], Path] = {}
    repeated = 0
    for _, found in read:
        for job, file in found.items():
            repeated += job in runs
            runs.setdefault(job, file)
    if not runs:
        raise ValueError(f"{', '.join(map(str, sources))} hold no finished runs: nothing to merge")
    data_seeds = sorted({d for _, d in runs})
    settings = SweepSettings.from_dict(
        {**first, "seed_offset": data_seeds[0], "seeds": data_seeds[-1] - data_seeds[0] + 1}
    )
    merged = Sweep(settings, out)
    merged.rundir.start()
    copied = 0
    for (n, d), file in sorted(runs.items()):
        key = run_name(n, d)
        if merged.rundir.done(key):
            continue
        merged.rundir.commit(
            key,
            {
                f"runs/{key}.nc": lambda path, file=file: atomic_write(
                    path, lambda tmp: shutil.copyfile(file, tmp)
                )
            },
        )
        copied += 1
    merged.verify(log)
    total, missing = len(merged.jobs()), merged.pending()
    log(
        f"merged {len(sources)} sweeps into {out}: {copied} run files copied, {len(runs)} runs of "
        f"dataset seeds {data_seeds[0]}…{data_seeds[-1]}"
        + (f" ({repeated} runs in more than one source: taken from the first)" if repeated else "")
    )
    if missing:
        seeds = sorted({settings.data_seed(s) for _, s in missing})
        log(
            f"{len(missing)} of {total} jobs are pending (dataset seeds {', '.join(map(str, seeds))} "
            f"at some n): run the sweep with the settings in {out}/manifest.json and --out {out} to fill them"
        )
    return merged


def main(settings: MergeSettings, out=None, *, progress: bool = True) -> int:
    """The CLI's ``merge``: merge, then rebuild the merged directory's ``diagnostics.csv``."""
    from .posterior_sweep import write_diagnostics

    if out is None:
        raise ValueError("merge needs --out, a new directory for the merged sweep")
    merged = merge(settings.sources, out)
    if merged.finished():
        write_diagnostics(merged)
        print(f"wrote {Path(out) / 'diagnostics.csv'}")
    return 0


COMMAND = Command(
    "merge",
    "merge sweeps run apart over different dataset seeds into one sweep directory",
    MergeSettings,
    main,
    None,
    writes=("sweep",),
)
