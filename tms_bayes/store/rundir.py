"""One run directory for every experiment: a manifest, finished jobs, and their files.

A run directory holds ``manifest.json``::

    {"kind": "sweep" | "truth-sweep" | "smc" | …, "format": 2, "tms_bayes_version": …,
     "settings": {…}, "completed": {job key: [relative file, …]}}

and the files of the finished jobs.  :class:`RunDir` is the only code that reads or writes manifests:

- opening an existing directory checks its kind and refuses other settings (listing every difference),
  so a re-run with the same settings resumes and nothing else can write into it;
- a job is finished when its files are written (atomically) *and* recorded in the manifest — the
  manifest is rewritten atomically after each job, so an interruption loses at most the job in flight;
  a recorded job whose file has gone is pending again;
- every path read from a manifest must stay inside the directory (a manifest is data, not a pointer
  to anywhere on disk);
- directories written by an older layout are read where the layout is the same (posterior sweeps of
  format 1 — no ``kind``, ``completed`` as {key: file}) and otherwise refused with a message naming the
  version that wrote them.

:func:`make_attrs` is the one provenance stamp (settings, package version, creation time) put on every
saved dataset; :data:`VOLATILE_ATTRS` lists the attrs that legitimately differ between identical runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import __version__, _interrupt
from .atomic import remove_orphans, temporary_tag, write_text

__all__ = [
    "RunDir",
    "make_attrs",
    "setting_attrs",
    "attrs_mismatch",
    "settings_differences",
    "data_seed_of",
    "read_kind",
    "check_output",
    "VOLATILE_ATTRS",
    "FORMAT",
]

#: the manifest layout written by this version
FORMAT = 2

#: attrs that differ between two runs with identical settings and seeds: wall times, timestamps, the
#: machine, the number of device shards and of jobs sampled at once (the draws depend on neither).
#: "Identical runs" means arrays bitwise equal and every other attr equal
#: (``tests/conftest.py::assert_identical_runs``).
VOLATILE_ATTRS = frozenset(
    {
        "created",
        "created_at",
        "wall_time_s",
        "sampling_time_s",
        "device_shards",
        "parallel_jobs",
        "jax_backend",
        "host",
        "arviz_version",
        "inference_library_version",
    }
)


def make_attrs(settings: dict, **extra) -> dict:
    """The provenance stamp of a saved dataset: every setting as ``setting_<name>`` (lists, dicts and
    None as JSON), the package version, the creation time, then ``extra``."""
    attrs = setting_attrs(settings)
    attrs.update({"tms_bayes_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    attrs.update(extra)
    return attrs


def setting_attrs(settings: dict) -> dict:
    """The ``setting_<name>`` part of :func:`make_attrs` (lists, dicts and None as JSON)."""
    return {
        f"setting_{k}": (json.dumps(v) if isinstance(v, (list, dict, tuple)) or v is None else v)
        for k, v in settings.items()
    }


def attrs_mismatch(attrs: dict, expected: dict) -> list[str]:
    """Where the stored ``attrs`` of a run file differ from ``expected`` ({attr: value}): one
    "name: stored there, expected" entry per difference (a missing attr is a difference)."""
    out = []
    for name, want in expected.items():
        got = attrs.get(name, "<missing>")
        got = got.item() if hasattr(got, "item") else got
        if isinstance(want, float) and isinstance(got, (int, float)):
            same = got == want or (want != want and got != got)
        else:
            same = got == want
        if not same:
            out.append(f"{name}: {got!r} there, {want!r} expected")
    return out


def run_mismatch(attrs: dict, job: dict, settings: dict) -> str:
    """How the attrs of a run file differ from those its job should have ("" if not): the job's own
    attrs (n, seed, …) must match, and the settings wherever the file records them (older files
    record fewer).  A posterior-sweep file written before ``data_seed`` was recorded has it derived
    from its ``seed`` and ``setting_seed_offset``."""
    if "data_seed" in job and "data_seed" not in attrs:
        attrs = {**attrs, "data_seed": data_seed_of(attrs)}
    expected = dict(job)
    expected.update({k: v for k, v in setting_attrs(settings).items() if k in attrs})
    return "; ".join(attrs_mismatch(attrs, expected))


def data_seed_of(attrs: dict) -> int | None:
    """The dataset seed of a posterior-sweep run file from its attrs: ``data_seed``, or for a file
    written before that was recorded, its seed index plus ``setting_seed_offset`` (None if neither)."""
    if "data_seed" in attrs:
        return int(attrs["data_seed"])
    if "seed" in attrs:
        return int(attrs["seed"]) + int(attrs.get("setting_seed_offset", 0))
    return None


def file_problem(path: Path, job: dict, settings: dict, group: str | None = "posterior") -> str:
    """Why the run file ``path`` is not job ``job`` of a directory with ``settings`` ("" if it is):
    unreadable (truncated, not HDF5, no ``group``; None: the root) or holding another run's attrs
    (:func:`run_mismatch`).  A reader's own trouble (permission, memory) is raised, never blamed on
    the file."""
    from .netcdf import open_dataset

    try:
        with open_dataset(path, group=group) as ds:
            return run_mismatch(dict(ds.attrs), job, settings)
    except (PermissionError, MemoryError):
        raise  # the file may be fine: never set aside for a problem of the reader
    except Exception as exc:  # truncated, not HDF5, no posterior group: unreadable whatever the cause
        return f"unreadable: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


class RunDir:
    """The run directory ``out`` of ``kind`` with ``settings`` (module docstring).

    ``what`` names the experiment in messages ("a sweep", "an SMC run").  Opening never writes;
    :meth:`start` creates the directory and the manifest (call it when the work is about to begin)."""

    def __init__(self, out, kind: str, settings: dict, what: str, *, legacy: dict | None = None):
        """``legacy``: settings added after directories of this kind were first written, with the value an
        older manifest that lacks them implicitly had (nested like ``settings``)."""
        self.out = Path(out)
        self.kind = kind
        self.settings = settings
        self.what = what
        self.completed: dict[str, list[str]] = {}
        self.extra: dict = {}
        # the manifest's bookkeeping (completed, its file) may be touched from a writer thread too
        # (``Sweep.run`` writes each job's files while the next jobs sample)
        self._books = threading.RLock()
        path = self.manifest_path
        if path.exists():
            body = self._read(path)
            diffs = settings_differences(with_legacy(body.get("settings", {}), legacy or {}), settings)
            if diffs:
                raise ValueError(
                    f"{self.out} holds {what} with different settings ({'; '.join(diffs)}); "
                    "use a new --out or the same settings to resume"
                )
            self.extra = {
                k: v
                for k, v in body.items()
                if k not in ("kind", "format", "tms_bayes_version", "settings", "completed")
            }
            for key, files in body.get("completed", {}).items():
                files = [files] if isinstance(files, str) else list(files)
                if all(self._inside(f).exists() for f in files):
                    self.completed[key] = files

    @classmethod
    def existing_settings(cls, out, kind: str, what: str) -> dict:
        """The settings recorded in the existing run directory ``out`` of ``kind`` (to reopen it)."""
        path = Path(out) / "manifest.json"
        if not path.exists():
            raise ValueError(f"{out} is not {what}: it has no manifest.json")
        probe = cls.__new__(cls)
        probe.out, probe.kind, probe.what = Path(out), kind, what
        return probe._read(path).get("settings", {})

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.json"

    def _inside(self, relative: str) -> Path:
        """``out / relative``, refused unless it stays inside ``out``."""
        root = self.out.resolve()
        path = (self.out / relative).resolve()
        if path != root and root not in path.parents:
            raise ValueError(
                f"{self.manifest_path} lists {relative!r}, a path outside the run directory; "
                "the manifest is corrupt"
            )
        return path

    def _read(self, path: Path) -> dict:
        try:
            body = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{path} is not a readable tms-bayes manifest ({exc}); choose another --out"
            ) from None
        if not isinstance(body, dict):
            raise ValueError(f"{path} is not a tms-bayes manifest (not a JSON object); choose another --out")
        kind, fmt = body.get("kind"), body.get("format", 1)
        written = body.get("tms_bayes_version", "an unknown version")
        if fmt > FORMAT:
            raise ValueError(
                f"{self.out} was written by tms-bayes {written} (run-directory format {fmt}); "
                f"this is {__version__} "
                f"(format {FORMAT}): upgrade tms-bayes to read it"
            )
        if kind is None and fmt == 1:
            kind = "sweep"  # format 1 posterior sweeps carried no kind; their layout is this one
        elif fmt == 1:
            raise ValueError(
                f"{self.out} was written by tms-bayes {written} in the previous run-directory layout "
                f"({kind!r}, "
                f"format 1), which this version ({__version__}) does not read; re-run into a new --out"
            )
        if kind != self.kind:
            raise ValueError(f"{self.out} is not {self.what}: it holds a {kind!r} run")
        return body

    def start(self) -> "RunDir":
        """Create the directory and write the manifest (before the first job); remove the temporary
        files of writers killed outright (SIGKILL) before they could (:func:`~.atomic.remove_orphans`)."""
        self.out.mkdir(parents=True, exist_ok=True)
        remove_orphans(self.out)
        self.refresh()
        if self._manifest_text() == _read_text(self.manifest_path):
            return self  # nothing to write: a finished run in a read-only directory can still be opened
        with self._books, self._manifest_lock():
            self.refresh()
            self.write_manifest()
        return self

    def _manifest_text(self) -> str:
        body = {
            "kind": self.kind,
            "format": FORMAT,
            "tms_bayes_version": __version__,
            "settings": self.settings,
            "completed": {k: v for k, v in sorted(self.completed.items())},
            **self.extra,
        }
        return json.dumps(body, indent=2, sort_keys=True)

    def write_manifest(self) -> None:
        with self._books:
            text = self._manifest_text()
            if _read_text(self.manifest_path) != text:  # unchanged: nothing is written
                write_text(self.manifest_path, text)

    def done(self, key: str) -> bool:
        return key in self.completed

    def pending(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self.completed]

    def commit(self, key: str, files: dict[str, Callable[[Path], object]]) -> None:
        """Write a job's files ({relative path: writer(path)}, each writer atomic), then record the job."""
        for relative, write in files.items():
            write(self._inside(relative))
        self.record(key, list(files))

    def record(self, key: str, files: list[str]) -> None:
        """Record the job ``key`` as finished: its ``files`` (relative) are already written."""
        missing = [f for f in files if not self._inside(f).exists()]
        if missing:
            raise ValueError(f"job {key} of {self.out} cannot be recorded: {', '.join(missing)} not written")
        with self._books, self._manifest_lock():  # read, merge, write as one step: no record is lost
            self.completed[key] = list(files)
            self.refresh()
            self.write_manifest()
        if threading.current_thread() is threading.main_thread():
            _interrupt.check()  # a safe point: the job is on disk (a writer thread leaves it to claim)

    def refresh(self) -> None:
        """Keep the jobs another writer recorded since this directory was opened (several writers)."""
        try:
            body = json.loads(self.manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            return
        with self._books:
            for key, files in (body.get("completed") or {}).items():
                files = [files] if isinstance(files, str) else list(files)
                if key not in self.completed and all(self._inside(f).exists() for f in files):
                    self.completed[key] = files

    def set_aside(self, key: str, reason: str, files: list[str] | None = None) -> list[Path]:
        """Move the files of job ``key`` (its recorded files, or ``files`` for an unrecorded job) into
        ``set_aside/`` (kept, never deleted) and mark the job pending, so that the next run redoes it;
        ``reason`` goes into ``set_aside/README``."""
        keep = self.out / "set_aside"
        keep.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        moved = []
        for relative in self.completed.pop(key, None) or files or []:
            source = self._inside(relative)
            if source.exists():
                target = keep / f"{Path(relative).name}.{stamp}"
                extra = 1
                while target.exists():  # two set-asides of one file within a second: keep both
                    target, extra = keep / f"{Path(relative).name}.{stamp}.{extra}", extra + 1
                source.replace(target)
                moved.append(target)
        with open(keep / "README", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {key}: {reason}\n")
        with self._books, self._manifest_lock():
            self.refresh()  # the moved files are gone, so this job is not merged back
            self.write_manifest()
        return moved

    def verify(
        self,
        units: dict[str, dict[str, dict]],
        log=print,
        settings: dict | None = None,
        group: str | None = "posterior",
    ) -> list[str]:
        """Check the run files of every job: ``units`` = {key: {each of its files, relative to the
        directory: the attrs it must hold, e.g. {"n": 100, "seed": 0}}}, checked with
        :func:`file_problem` against ``settings`` (those the files record; default this directory's).
        A job with a missing, unreadable or foreign file has its files set aside (:meth:`set_aside`,
        kept) so that the next run redoes it; a job whose files are all present and good but was never
        recorded (killed between writing and recording) is adopted: the run files, not the manifest,
        say what is finished.  Returns the keys set aside."""
        settings = self.settings if settings is None else settings
        bad = []
        for key, files in units.items():
            recorded = self.done(key)
            present = [f for f in files if self._inside(f).exists()]
            if not recorded and len(present) < len(files):
                continue  # never finished: the run writes it again
            problem = next(
                (
                    f"{f}: {p}"
                    for f in files
                    for p in [file_problem(self._inside(f), files[f], settings, group)]
                    if p
                ),
                "",
            )
            if problem:
                self.set_aside(key, problem, files=present)
                log(f"{self.out}: {key} set aside ({problem}); it will be redone")
                bad.append(key)
            elif not recorded:
                self.record(key, list(files))
                log(f"{self.out}: {key} is complete and adopted (its job had not been recorded)")
        return bad

    # -- claims: several writers (processes, cluster workers) can share one directory -----------------

    def claim(self, key: str, token: str | None = None) -> bool:
        """Claim job ``key`` for this process with an exclusive lock file ``locks/<key>.lock`` (exactly
        one of several writers gets it: :func:`_lock`).  A lock left by a dead process on this host
        (killed) is taken over; False when a live process (or one on another host) holds it.  A lock
        with the same ``token`` (a cluster task's key: the scheduler runs a task again only once the
        worker that had it is gone) is taken over too, from any host."""
        _interrupt.check()  # a safe point: a signal swallowed during the last job stops the run here
        return _lock(self.out / "locks" / f"{key}.lock", token)

    @contextlib.contextmanager
    def claimed(self, key: str, token: str | None = None):
        """Hold job ``key`` while this writer runs it: yields None when the job is this writer's to run,
        "held" when another writer holds it, "finished" when another finished it since this directory
        was read; the claim is released on exit (:meth:`claim`).  Every experiment's ``run_job``::

            with rundir.claimed(key, token) as taken:
                if taken:
                    return taken
                ...  # run, then commit or record the job
                return "done"
        """
        taken = self.take(key, token)
        if taken:
            yield taken
            return
        try:
            yield None
        finally:
            self.release(key)

    def take(self, key: str, token: str | None = None) -> str | None:
        """:meth:`claimed` without the block: None when job ``key`` is now this writer's (claimed; the
        caller releases it, :meth:`release`), else "held" or "finished" (nothing held)."""
        if not self.claim(key, token):  # another writer (process, cluster worker) has it
            return "held"
        try:
            self.refresh()
            finished = self.done(key)
        except BaseException:
            self.release(key)
            raise
        if finished:
            self.release(key)
            return "finished"
        return None

    @contextlib.contextmanager
    def _manifest_lock(self, timeout: float = 60.0):
        """Hold ``locks/manifest.lock`` while the manifest is read, merged and written (milliseconds), so
        that two writers recording at once keep both records.  Waits up to ``timeout`` seconds; a lock
        of a dead process is taken over."""
        path = self.out / "locks" / "manifest.lock"
        t0 = time.monotonic()
        while not _lock(path):
            if time.monotonic() - t0 > timeout:
                raise OSError(f"{path} has been held for over {timeout:g} s; if no tms-bayes is writing to "
                              f"{self.out}, delete it")  # fmt: skip
            time.sleep(0.01)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def release(self, key: str) -> None:
        """Give up this process's claim on ``key`` (after its files are committed, or when it failed).
        A lock that another process holds is left alone: releasing twice (a run stopped while handing
        the job to its writer thread, which releases it too) never frees a claim taken since."""
        path = self.out / "locks" / f"{key}.lock"
        owner = _lock_owner(path)  # None: gone, or unreadable — not another writer's we could recognise
        if owner is not None and (owner.get("host"), owner.get("pid")) != (socket.gethostname(), os.getpid()):
            return
        path.unlink(missing_ok=True)

    def path(self, key: str, index: int = 0) -> Path:
        """The ``index``-th file of the finished job ``key``."""
        if key not in self.completed:
            raise ValueError(f"{key} is not finished in {self.out}")
        return self._inside(self.completed[key][index])


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _lock(path: Path, token: str | None = None) -> bool:
    """Create the lock file ``path`` for this process if no live process holds it.  The file is written
    whole under a temporary name, then hard-linked into place (``os.link`` fails if ``path`` exists),
    so a lock is never seen empty.  A stale lock (:func:`_stale`) is renamed away and, if what was
    renamed is the very file judged stale (same inode), taken over; a fresh lock caught in between
    is put back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "token": token})
    tmp = path.with_name(f".{path.name}.{temporary_tag()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(body)
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)
                return True
            except FileExistsError:
                pass
            try:
                inode = path.stat().st_ino
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if not (_stale(path) or (token is not None and _token(path) == token)):
                return False
            grave = path.with_name(f".{path.name}.{temporary_tag()}.stale.tmp")
            try:
                os.rename(path, grave)
            except FileNotFoundError:
                continue
            if grave.stat().st_ino != inode:  # a live writer's new lock: give it back
                with contextlib.suppress(FileExistsError):
                    os.link(grave, path)
                grave.unlink()
                return False
            grave.unlink()
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _token(lock: Path) -> str | None:
    try:
        return json.loads(lock.read_text()).get("token")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def _lock_owner(lock: Path) -> dict | None:
    """The record a lock file holds ({host, pid, time, token}); None when it is gone or unreadable."""
    try:
        body = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _stale(lock: Path) -> bool:
    """Whether ``lock`` was left by a process of this host that no longer runs."""
    body = _lock_owner(lock)
    if body is None:
        return True  # unreadable: written by a process killed mid-write
    if body.get("host") != socket.gethostname():
        return False  # cannot tell: another machine's writer may be alive
    try:
        pid = int(body["pid"])
        if pid == os.getpid():
            return True  # this process's own leftover (a job that failed before its release)
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def with_legacy(recorded: dict, legacy: dict) -> dict:
    """``recorded`` settings with every key of ``legacy`` they lack filled in with its legacy value
    (recursing into nested settings): what a manifest written before those settings existed meant."""
    out = dict(recorded)
    for k, v in legacy.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = with_legacy(out[k], v)
        elif k not in out:
            out[k] = v
    return out


def settings_differences(old: dict, new: dict, words: tuple[str, str] = ("there", "now")) -> list[str]:
    """One "name: old there, new now" entry per setting that differs (``words`` name the two sides)."""
    return [
        f"{k}: {old.get(k)!r} {words[0]}, {new.get(k)!r} {words[1]}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def read_kind(out) -> str:
    """The kind of the run directory ``out`` ("sweep" for format-1 posterior sweeps); a ValueError when
    ``out`` holds no readable manifest."""
    path = Path(out) / "manifest.json"
    if not path.exists():
        raise ValueError(f"{out} is not a run directory: it has no manifest.json")
    try:
        body = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable tms-bayes manifest ({exc})") from None
    kind = body.get("kind") if isinstance(body, dict) else None
    return kind if kind is not None else "sweep"


def check_output(out, kinds=(None,)) -> Path:
    """Refuse an output directory before any work: ``out`` must be a directory or creatable (no file in
    the way, a writable parent), writable if it exists, and — when it already holds a run directory —
    of one of ``kinds`` (None: a plain directory without a manifest).  Returns ``out`` as a Path."""
    import os

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory; choose another --out")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"--out {out} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out} is not writable (no write permission on {probe})")
    manifest = out / "manifest.json"
    if manifest.exists():
        kind = read_kind(out)
        if kind not in kinds:
            wanted = " or ".join("a plain directory" if k is None else f"a {k!r} run" for k in kinds)
            raise ValueError(
                f"--out {out} holds a {kind!r} run, and this command writes {wanted}; choose another --out"
            )
    return out
