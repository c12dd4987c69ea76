"""Validation at the boundary: every public entry point checks its arguments here and raises a
``ValueError`` that names the argument, what was wrong, and what is allowed."""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable

import numpy as np


def integer(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name`` and the allowed range."""
    allowed = _range_text(minimum, maximum)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return value


def positive(name: str, value, *, strict: bool = True) -> float:
    """Return ``value`` as a finite float > 0 (or >= 0 when ``strict`` is False)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a finite number {'> 0' if strict else '>= 0'}, got {value!r}"
        ) from None
    if not math.isfinite(x) or x < 0 or (strict and x == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if strict else '>= 0'}, got {value!r}")
    return x


def sample_sizes(name: str, values) -> np.ndarray:
    """Return a 1-D float array of sample sizes n > 0 (finite); raise naming ``name`` otherwise."""
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of sample sizes > 0, got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        raise ValueError(f"{name} must contain only finite sample sizes > 0, got {arr[bad][:5].tolist()}")
    return arr


def finite_array(name: str, value, *, ndim_min: int = 1) -> np.ndarray:
    """Return ``value`` as a float64 array with at least ``ndim_min`` dims and only finite entries."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim < ndim_min:
        raise ValueError(f"{name} must have at least {ndim_min} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        n_bad = int((~np.isfinite(arr)).sum())
        raise ValueError(
            f"{name} must be finite; it has {n_bad} NaN or infinite entr{'y' if n_bad == 1 else 'ies'}"
        )
    return arr


def choice(name: str, value, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")
    return value


def _range_text(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"in [{minimum}, {maximum}]"
    if minimum is not None:
        return f">= {minimum}"
    if maximum is not None:
        return f"<= {maximum}"
    return ""


_NO_CEILINGS = contextvars.ContextVar("tms_bayes_no_ceilings", default=False)


def ceiling(name: str, value, limit, unit: str = "") -> None:
    """Refuse ``value`` above ``limit`` — a size that would exhaust memory or run for days, most often a
    typo — unless inside :func:`no_ceilings` (the CLI's ``--force``) for a real large run."""
    if value > limit and not _NO_CEILINGS.get():
        raise ValueError(
            f"{name} = {value:g}{unit} is above the ceiling {limit:g}{unit} (a guard against typos); "
            "pass --force (in Python: with tms_bayes.no_ceilings():) for a real large run"
        )


@contextlib.contextmanager
def no_ceilings():
    """Lift the size ceilings of :func:`ceiling` inside the ``with`` block."""
    token = _NO_CEILINGS.set(True)
    try:
        yield
    finally:
        _NO_CEILINGS.reset(token)
