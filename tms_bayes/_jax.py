"""Single place where tms-bayes configures JAX.

**x64 is required.**  The theory layer compares closed forms to 1e-10 and PyMC's graphs are float64
(pytensor's ``floatX``), so importing any tms-bayes module that computes with JAX turns on
``jax_enable_x64`` for the session.  Import ``jax`` and ``jnp`` from here rather than from ``jax``
directly so that the flag is always set first.

**Devices.**  On CPU, XLA runs one program on one core.  ``tms_bayes.configure`` splits the host into one
device per core (``--xla_force_host_platform_device_count``): a NUTS sweep then samples one job per core
at once (:meth:`tms_bayes.inference.sweep.Sweep.run`), and the engines that shard chains or particles
across devices (:mod:`tms_bayes.inference.nuts`, the SMC stages) use every core.  It only works before
JAX starts its backends (the first computation or ``jax.devices()``), so the ``tms-bayes`` command line
calls it first thing (:mod:`tms_bayes._devices`), and a notebook calls ``tms_bayes.configure()`` in its
first cell.  Nothing else in tms-bayes touches the user's ``XLA_FLAGS``: without
``tms_bayes.configure``, everything runs on one device (a sweep samples one job at a time).
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (must follow the config update)

__all__ = ["jax", "jnp"]
