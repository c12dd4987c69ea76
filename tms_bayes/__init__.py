"""tms-bayes: Bayesian and dynamical phase transitions in singular models.

Subpackages (imported on demand, so ``import tms_bayes`` stays cheap):

- :mod:`tms_bayes.store`       atomic writes (the only code that writes result files)
- :mod:`tms_bayes.theory`      exact TMS potential, k-gon critical points, λ, free energies
- :mod:`tms_bayes.models`      PyMC model builders and data generators
- :mod:`tms_bayes.inference`   samplers and sweeps
- :mod:`tms_bayes.analysis`    phases, occupancy, criteria, plots and reports
- :mod:`tms_bayes.experiments` one module per workflow (settings · run · analyse · report · main)

Imports point down this list and never back (``tests/test_architecture.py``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tms-bayes")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "configure", "open_sweep", "no_ceilings"]


def configure(devices: int | None = None, *, strict: bool = True) -> int:
    """One XLA host device per core (or ``devices``), so that a NUTS sweep samples one job per core at
    once (a cluster worker shards each job's chains over them instead); call it
    before the first JAX computation, e.g. in a notebook's first cell.  x64 is always on (required).
    Also keeps XLA's compiled programs on disk (``~/.cache/tms-bayes/jax``, at most 1 GiB;
    ``TMS_BAYES_JAX_CACHE=off`` or a directory), so a later process compiles a sweep's sampler only
    once.  See :func:`tms_bayes._devices.configure`."""
    from ._devices import configure as _configure

    return _configure(devices, strict=strict)


def open_sweep(path):
    """A sweep or SMC run directory as one ``xarray.DataTree`` over (n, seed, chain, draw), settings in
    attrs (:func:`tms_bayes.inference.opening.open_sweep`)."""
    from .inference.opening import open_sweep as _open

    return _open(path)


def no_ceilings():
    """``with tms_bayes.no_ceilings():`` lifts the size ceilings that refuse likely typos (n > 10⁶,
    more than 1024 chains, …) for a real large run — the CLI's ``--force``
    (:func:`tms_bayes._validate.no_ceilings`)."""
    from ._validate import no_ceilings as _no_ceilings

    return _no_ceilings()
