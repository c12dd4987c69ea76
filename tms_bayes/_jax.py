"""Single place where tms-bayes configures JAX.

The theory layer compares closed forms to 1e-10 and PyMC's graphs are float64 (pytensor's
``floatX``), so every JAX computation in tms-bayes runs with 64-bit floats.  Import ``jax`` and
``jnp`` from here rather than from ``jax`` directly so that the flag is always set first.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402  (must follow the config update)

__all__ = ["jax", "jnp"]
