import os

import matplotlib

# tests compile from scratch: no persistent JAX cache unless a test sets one up (tms_bayes._devices)
os.environ.setdefault("TMS_BAYES_JAX_CACHE", "off")

matplotlib.use("Agg")

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20231006)


def assert_identical_runs(a, b):
    """"Identical runs": every array bitwise equal (NaN equal to NaN) and every attr equal, except the
    declared volatile ones (tms_bayes.store.rundir.VOLATILE_ATTRS: wall times, timestamps, host, shard
    count).  ``a`` and ``b``: InferenceData, xarray Datasets or DataArrays."""
    import xarray as xr

    from tms_bayes.store.rundir import VOLATILE_ATTRS

    def stable(attrs):
        return {k: v for k, v in attrs.items() if k not in VOLATILE_ATTRS}

    def same(x, y, where):
        assert stable(x.attrs) == stable(y.attrs), f"{where}: attrs differ"
        if isinstance(x, xr.DataArray):
            assert x.dims == y.dims and x.dtype == y.dtype, f"{where}: dims or dtype differ"
            np.testing.assert_array_equal(x.values, y.values, err_msg=where)
            return
        assert set(x.data_vars) == set(y.data_vars), f"{where}: variables differ"
        for name in x.data_vars:
            same(x[name], y[name], f"{where}/{name}")
        for name in x.coords:
            np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=f"{where} coord {name}")

    if hasattr(a, "groups") and callable(a.groups):
        assert set(a.groups()) == set(b.groups()), "groups differ"
        for g in a.groups():
            same(getattr(a, g), getattr(b, g), g)
    else:
        same(a, b, "dataset")
