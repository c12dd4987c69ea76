"""``tms_bayes.configure``: host devices for JAX, set before JAX starts (see :mod:`tms_bayes._jax`).

This module does not import JAX, so calling :func:`configure` cannot start a backend itself."""

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def _backends_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def configure(devices: int | None = None, *, strict: bool = True) -> int:
    """Ask XLA for ``devices`` host (CPU) devices, default one per core; returns the count in effect.

    Call before JAX is used.  If JAX's backends have already started, the count cannot change: with
    ``strict`` a request that differs from what is running raises ``ValueError``; otherwise the count
    in effect is returned unchanged (the CLI's mode).  Other entries of ``XLA_FLAGS`` are kept."""
    from . import _validate

    want = (os.cpu_count() or 1) if devices is None else _validate.integer("devices", devices, minimum=1)
    if _backends_started():
        import jax

        have = jax.local_device_count(backend="cpu")
        if strict and have != want:
            raise ValueError(
                f"JAX is already running with {have} CPU device(s); "
                f"call tms_bayes.configure(devices={want}) before the "
                "first JAX computation (e.g. in a notebook's first cell, or restart the kernel)"
            )
        return have
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_FLAG)]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_FLAG}={want}"])
    return want


__all__ = ["configure"]
