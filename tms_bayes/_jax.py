"""Single place where tms-bayes configures JAX.

The theory layer compares closed forms to 1e-10 and PyMC's graphs are float64 (pytensor's
``floatX``), so every JAX computation in tms-bayes runs with 64-bit floats.  Import ``jax`` and
``jnp`` from here rather than from ``jax`` directly so that the flag is always set first.

On CPU, XLA runs one program on one core.  Unless the user has set it, the host platform is split
into one device per core (``--xla_force_host_platform_device_count``) so that the sampler can shard
chains across cores (``tms_bayes.inference.nuts``).  This takes effect only if tms-bayes is imported
before JAX initialises its backends; otherwise chains simply run on one core.
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (must follow the config update)

__all__ = ["jax", "jnp"]
