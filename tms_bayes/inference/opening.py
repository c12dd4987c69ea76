"""One labelled object per run directory: ``open_sweep(path)``.

A sweep directory holds one InferenceData file per (n, seed); an SMC directory one per (n, seed) with
the particles as a single chain.  :func:`open_sweep` stacks them into an ``xarray.DataTree`` with the
groups ``posterior`` and ``sample_stats``, each with dims (n, seed, chain, draw, …), so that a sweep is
one dataset (``tree["posterior"]["L_n"].mean(("chain", "draw"))`` is a table over n and seed).  The
settings are in the tree's attrs (``settings``: the manifest's JSON; ``kind``: "nuts" or "smc"); a job
that is not finished yet is NaN and listed in ``attrs["missing"]``.  ``observed_data`` is left out (its
length is n); ``tms_bayes.inference.sweep.dataset`` gives D_n.  Values are those of the per-file
InferenceData, unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["open_sweep"]

GROUPS = ("posterior", "sample_stats")


def open_sweep(path) -> xr.DataTree:
    """The sweep (``tms-bayes sweep``/``run``) or SMC run (``tms-bayes smc``, ``run``'s ``smc/``) in
    ``path`` as one DataTree (module docstring)."""
    from ..store.rundir import read_kind

    path = Path(path)
    kind = read_kind(path)
    if kind == "smc":
        from .smc_sweep import load_smc_sweep

        run = load_smc_sweep(path)
        ns, seeds, done = list(run.sweep_settings.n), run.seeds, set(run.completed)
        settings = {"sweep": run.sweep_settings.to_dict(), "smc": run.settings.to_dict()}
        load = run.load
    elif kind == "sweep":
        from .sweep import load_sweep

        run = load_sweep(path)
        ns, seeds = list(run.settings.n), list(range(run.settings.seeds))
        done = set(run.finished())
        settings = run.settings.to_dict()
        load = run.load
    else:
        raise ValueError(
            f"{path} holds a {kind!r} run; open_sweep opens posterior sweeps over n and SMC runs"
        )
    finished = [(n, s) for n in ns for s in seeds if ((n, s) in done if kind == "sweep" else s in done)]
    if not finished:
        raise ValueError(f"{path} has no finished job yet")
    template = {g: _strip(load(*finished[0])[g]) for g in GROUPS}
    groups = {}
    for g in GROUPS:
        rows = []
        for n in ns:
            row = [_strip(load(n, s)[g]) if (n, s) in finished else _missing(template[g]) for s in seeds]
            rows.append(xr.concat(row, dim=pd.Index(seeds, name="seed"), join="exact"))
        groups[g] = xr.concat(rows, dim=pd.Index(ns, name="n"), join="exact")
    missing = [f"n={n} seed={s}" for n in ns for s in seeds if (n, s) not in finished]
    tree = xr.DataTree.from_dict({f"/{g}": ds for g, ds in groups.items()})
    tree.attrs = {
        "kind": "smc" if kind == "smc" else "nuts",
        "path": str(path),
        "settings": json.dumps(settings, sort_keys=True),
        "missing": json.dumps(missing),
    }
    return tree


def _strip(ds: xr.Dataset) -> xr.Dataset:
    """A group without its per-job attrs (they differ between jobs: n, seed, wall times)."""
    return ds.drop_attrs(deep=False)


def _missing(template: xr.Dataset) -> xr.Dataset:
    """NaN in the shape of a finished job (integers and booleans become float)."""
    return template.map(lambda v: xr.full_like(v, np.nan, dtype=float))
