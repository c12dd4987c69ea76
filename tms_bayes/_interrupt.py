"""Stopping at a safe point on SIGINT / SIGTERM.

The CLI installs :func:`handler` for both signals: it records the signal and raises at once
(``KeyboardInterrupt`` / :class:`Terminated`), which unwinds through the atomic writers (their
temporary files are removed) to the CLI (exit 130 / 143).  Where the raise is swallowed — Python
ignores exceptions raised inside garbage-collector callbacks, such as JAX's, and some compiled
libraries catch them — the recorded signal is raised again by :func:`check`, which the run directory
calls between jobs (``RunDir.claim``, and ``RunDir.record`` when it runs on the main thread — a sweep's
writer thread leaves it to the next claim): the process then stops after the jobs in flight, never
later."""

from __future__ import annotations

import signal

__all__ = ["Terminated", "handler", "check", "clear", "behind"]

_requested: int | None = None


class Terminated(BaseException):
    """SIGTERM, raised like ``KeyboardInterrupt`` is for SIGINT."""


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


def handler(signum, frame) -> None:
    """Record ``signum`` and raise its exception."""
    global _requested
    _requested = signum
    raise _exception(signum)


def check() -> None:
    """Raise the recorded signal's exception, if one arrived (a safe point between jobs)."""
    if _requested is not None:
        raise _exception(_requested)


def behind(exc: BaseException) -> BaseException | None:
    """The signal exception behind ``exc``, or ``None``: one in its ``__cause__`` / ``__context__``
    chain (a library that wraps what it catches — ``dataclasses`` turns an interrupt during
    ``__set_name__`` into a ``RuntimeError``), else the recorded signal (a library caught the raise
    and failed its own way).  Either way the error is the signal's doing, not a fault to report."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (KeyboardInterrupt, Terminated)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return _exception(_requested) if _requested is not None else None


def clear() -> None:
    global _requested
    _requested = None
