"""Atomic writes: a result file is either the old complete file or the new complete file, never a
half-written one.  Everything tms-bayes saves goes through here (write to a temporary file in the
same directory, flush to disk, then ``os.replace``, which is atomic on POSIX and Windows).

A temporary file is named ``.<name>.<host>-<pid>.<random>.tmp``: a process killed outright (SIGKILL,
power loss) cannot remove its own, so the next write of the same file, and every run directory when
a run starts (:func:`remove_orphans`), removes those whose process is gone — never one that a live
writer is still filling."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_text", "write_netcdf", "write_figure", "remove_orphans", "temporary_tag"]

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically; clean up on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))  # this file's, left by a SIGKILL
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{temporary_tag()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def temporary_tag() -> str:
    """``<host>-<pid>``: whose temporary file this is (module docstring; dots in the host name as _)."""
    return f"{_host()}-{os.getpid()}"


def _host() -> str:
    return socket.gethostname().replace(".", "_").replace("/", "_")


_TAG = re.compile(r"\.(?P<host>[^./]+)-(?P<pid>\d+)\.[^/]*\.tmp$")


def remove_orphans(root) -> list[Path]:
    """Remove the temporary files under ``root`` left by processes of this host that no longer run
    (killed mid-write); returns them.  Another host's, a live process's and an unnamed one are kept."""
    return _remove_dead(Path(root).rglob(".*.tmp"))


def _remove_dead(candidates) -> list[Path]:
    removed = []
    host = _host()
    for tmp in candidates:
        m = _TAG.search(tmp.name)
        if not m or m["host"] != host or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or a read-only directory: leave it
            tmp.unlink()
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_text(path, text: str) -> Path:
    def _w(tmp):
        Path(tmp).write_text(text, encoding="utf-8")

    return atomic_write(path, _w)


def write_netcdf(path, data) -> Path:
    """Write an xarray Dataset/DataArray or ArviZ InferenceData atomically (with the engine of every
    result file, :data:`tms_bayes.store.netcdf.ENGINE`)."""
    from .netcdf import ENGINE

    return atomic_write(path, lambda tmp: data.to_netcdf(tmp, engine=ENGINE))


def write_figure(path, fig, *, dpi: int = 130) -> Path:
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight"))
