"""``tms_bayes.configure``: host devices for JAX, set before JAX starts (see :mod:`tms_bayes._jax`), and
JAX's persistent compilation cache.

Calling :func:`configure` cannot start a JAX backend itself (it imports JAX for its options only).

**The compilation cache.**  XLA's compilation of a sweep's NUTS programs takes seconds (3 of the 5 that
compiling a TMS sweep costs on a 2-core CPU); JAX can keep compiled programs on disk, keyed by the
program, the compiler's version and its flags, so a later process running the same programs loads them
instead.  :func:`configure` turns that on in ``$TMS_BAYES_JAX_CACHE`` (default
``${XDG_CACHE_HOME:-~/.cache}/tms-bayes/jax``; ``off`` turns it off), for programs that took at least
:data:`CACHE_MIN_COMPILE_S` to compile, kept to :data:`CACHE_MAX_BYTES` (least recently used dropped).
A cache the user configured for JAX (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is left as it is.
On CPU a loaded program is the same executable, so results are bitwise those of a fresh compilation
(``tests/test_sweep.py``; on a GPU, XLA's autotuning can make two fresh compilations differ anyway);
tracing and lowering still run in every process.  JAX writes an entry non-atomically: a process killed
outright (SIGKILL) while writing one can leave it truncated, which later processes report as a warning
and compile around; deleting the directory clears it."""

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
    Also turns on the persistent compilation cache (:func:`compilation_cache`: up to 1 GiB on disk).

    Call before JAX is used.  If JAX's backends have already started, the count cannot change: with
    ``strict`` a request that differs from what is running raises ``ValueError``; otherwise the count
    in effect is returned unchanged (the CLI's mode).  Other entries of ``XLA_FLAGS`` are kept."""
    from . import _validate

    want = (os.cpu_count() or 1) if devices is None else _validate.integer("devices", devices, minimum=1)
    compilation_cache()
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


#: programs compiled faster than this are not cached; the cache's size limit (bytes)
CACHE_MIN_COMPILE_S, CACHE_MAX_BYTES = 0.2, 1 << 30
_CACHE_ENV = "TMS_BAYES_JAX_CACHE"
_chosen: dict = {}  # the directory this process set (so that a second call recognises its own)


def compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache (module docstring); returns its directory, or None
    when it is off (``TMS_BAYES_JAX_CACHE=off``) or the user's own cache is in effect.  Set through
    ``jax.config`` (importing JAX starts no backend), never the environment: child processes choose
    for themselves (the CLI, cluster workers and the main job's SMC process call :func:`configure`)."""
    import jax

    choice = os.environ.get(_CACHE_ENV, "").strip()
    current = jax.config.jax_compilation_cache_dir
    if current and current != _chosen.get("dir"):
        return None  # the user's own (JAX_COMPILATION_CACHE_DIR, or jax.config)
    if choice.lower() in ("off", "0", "false", "no", "none"):
        if current:  # turned off after this process had turned it on
            jax.config.update("jax_compilation_cache_dir", None)
            _chosen.clear()
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.abspath(os.path.expanduser(choice or os.path.join(base, "tms-bayes", "jax")))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S)
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    _chosen["dir"] = path
    return path


__all__ = ["configure", "compilation_cache"]
