"""The netCDF engine of every result file tms-bayes reads or writes, and the readers that use it.

``netcdf4`` (the netCDF-C library behind the ``netCDF4`` package): a sweep's run file (27 variables in
four groups) is written in 0.04 s and read in 0.03 s, against 0.14–0.18 s and 0.13 s with ``h5netcdf``
(pure Python over h5py, whose cost is per variable and holds the GIL) — measured on the 2-core CI
machine, December 2026.  Both write the same format (netCDF-4 on HDF5), so files written by either are
read by either: run directories from before the switch read unchanged.  netCDF-C is not thread-safe;
xarray serialises its calls with a lock of its own, so every reader here goes through xarray.
"""

from __future__ import annotations

import arviz as az
import xarray as xr

__all__ = ["ENGINE", "open_dataset", "open_dataarray", "read_inference_data", "warm_up"]

ENGINE = "netcdf4"


def open_dataset(path, **kwargs) -> xr.Dataset:
    """``xarray.open_dataset`` with :data:`ENGINE` (use it as a context manager, or ``.load()``)."""
    return xr.open_dataset(path, engine=ENGINE, **kwargs)


def open_dataarray(path, **kwargs) -> xr.DataArray:
    """``xarray.open_dataarray`` with :data:`ENGINE`."""
    return xr.open_dataarray(path, engine=ENGINE, **kwargs)


def read_inference_data(path) -> az.InferenceData:
    """Every group of an ArviZ InferenceData file, read into memory (the file is closed again): the
    groups ``InferenceData.to_netcdf`` wrote, each equal (``identical``) to the group ``az.from_netcdf``
    returns (attrs of the file's root group, which tms-bayes never writes, are not kept), through
    xarray (its lock) in one opening of the file."""
    with xr.open_datatree(path, engine=ENGINE) as tree:
        return az.InferenceData(**{name: tree[name].to_dataset().load() for name in tree.children})


def warm_up() -> None:
    """Write and read back a one-variable file in a temporary directory.  A process's first result file
    costs ≈ 0.2–0.4 s more than the next (the netCDF-C library's set-up, and xarray importing
    ``dask.distributed`` where it is installed, to choose its write lock); a sweep calls this while XLA
    compiles its sampler, when a core is otherwise idle, instead of paying it after its first job."""
    import tempfile
    from pathlib import Path

    import numpy as np

    with tempfile.TemporaryDirectory(prefix="tms-bayes-warm-up-") as tmp:
        path = Path(tmp) / "warm-up.nc"
        xr.Dataset({"x": ("i", np.zeros(1))}).to_netcdf(path, engine=ENGINE)
        with open_dataset(path) as ds:
            ds.load()
