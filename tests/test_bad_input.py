"""The standing bad-input suite: every command refuses bad input with one line on stderr
(``tms-bayes: error: …``), exit status 2, and writes nothing — no output directory, no manifest, no
temporary file — whatever category the mistake is in.

Categories: *types* (text where a number goes, a fraction where an integer goes, a word outside the
choices) and *ranges* (NaN, ±inf, negatives, out-of-range values, sizes above the ceilings) are
generated from every option of every command's parser, so a new option is covered the day it is
added; *paths* (``--out`` a file, under a file, another command's run directory, a corrupt
manifest), *files* (inputs that are not what they claim) and *combinations* (settings that are each
fine but not together) are listed by hand.  Everything runs in-process through ``main([...])``: the
validation happens before any sampling, so the suite stays fast.
"""

import json
import os

import pytest

from tms_bayes.cli import build_parser, main

#: a value for each command's positional argument that passes on its own (filled in per test)
POSITIONAL = {"occupancy": "{sweep}", "criteria": "{sweep}", "compare": "{sweep}", "relu": "pt1"}

#: integer options where a negative number is allowed (none today)
NEGATIVE_INT_OK: set[tuple[str, str]] = set()
#: float options where a negative (or zero) value is meaningful
NEGATIVE_FLOAT_OK = {
    "--bias-tol",
    "--dead-tol",
    "--init-noise",
    "--init-bias-std",
    "--zero-norm",
    "--off-factor",
}


def _options():
    """(command, flag, kind, choices) for every option of every command."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    out = []
    for name, sp in sub.choices.items():
        for a in sp._actions:
            if not a.option_strings or a.nargs == 0 or a.dest in ("out", "help"):
                continue
            kind = (
                "choice"
                if a.choices
                else (
                    "int"
                    if getattr(a.type, "__name__", "") == "_integer"
                    else "float"
                    if a.type is float
                    else "text"
                )
            )
            out.append((name, a.option_strings[0], kind, a.default))
    return out


def _generated_cases():
    cases = []
    for cmd, flag, kind, default in _options():
        if kind == "int":
            cases += [
                (cmd, [flag, "abc"], "invalid int value"),
                (cmd, [flag, "2.5"], "invalid int value"),
                (cmd, [flag, "1e3"], "invalid int value"),
            ]
            if (cmd, flag) not in NEGATIVE_INT_OK:
                cases.append((cmd, [flag, "-5"], ""))
        elif kind == "float":
            cases += [
                (cmd, [flag, "abc"], "invalid float value"),
                (cmd, [flag, "nan"], "finite"),
                (cmd, [flag, "inf"], "finite"),
            ]
            if flag not in NEGATIVE_FLOAT_OK:
                cases.append((cmd, [flag, "-1"], ""))
        elif kind == "choice":
            cases.append((cmd, [flag, "bogus"], "invalid choice"))
    return cases


HAND_CASES = [
    # ranges and sizes
    ("theory", ["--c", "100000000000000000000"], "ceiling"),
    ("theory", ["--c", "1"], "c must be"),
    ("theory", ["--r", "7"], "r must be"),
    ("theory", ["--n", "0:100:10"], "sample sizes n > 0"),
    ("theory", ["--n", "1:1e13:1"], "more than"),
    ("theory", ["--n", "abc"], "--n must be"),
    ("theory", ["--n", "100:200:-5"], "--n must be"),
    ("theory", ["--phases", "5,9"], "unknown phase '9'"),
    ("theory", ["--phases", ","], "at least one phase"),
    ("theory", ["--lambdas", "4+"], "--lambdas must be"),
    ("theory", ["--lambdas", "4+=-2"], "λ must be"),
    ("theory", ["--lambdas", "4+=nan"], "λ must be"),
    ("sweep", ["--n", "100:200:50.5"], "integers"),
    ("sweep", ["--n", "1:10000000000000:1"], "more than"),
    ("sweep", ["--n", "100,100"], "must not repeat"),
    ("sweep", ["--n", "100,abc"], "--n must be"),
    ("sweep", ["--n", "2000000"], "ceiling"),
    ("sweep", ["--chains", "1000000000"], "ceiling"),
    ("sweep", ["--seeds", "100000"], "ceiling"),
    ("sweep", ["--draws", "100000000"], "ceiling"),
    ("sweep", ["--chains", "0"], "chains must be"),
    ("sweep", ["--beta", "1/n"], "a/log n"),
    ("sweep", ["--beta", "0"], "beta must be"),
    ("sweep", ["--beta", "-1/log n"], "a/log n"),
    ("sweep", ["--sigma", "0"], "sigma must be"),
    ("sweep", ["--target-accept", "1.5"], "target_accept"),
    ("sweep", ["--max-tree-depth", "0"], "max_tree_depth"),
    ("dynamics", ["--lr", "1e300"], "lr must be"),
    ("dynamics", ["--batch-size", "2000"], "batch_size"),
    ("dynamics", ["--init-k", "9"], "init_k"),
    ("dynamics", ["--llc-burn-in", "1000"], "llc_burn_in"),
    ("dynamics", ["--min-span", "0.5"], "min_span"),
    ("dynamics", ["--epochs", "100000000"], "ceiling"),
    ("smc", ["--particles", "3"], "particles"),
    ("smc", ["--cess-target", "2"], "cess_target"),
    ("smc", ["--reference-n", "150"], "reference_n"),
    ("smc", ["--smc-repeats", "0"], "smc_repeats"),
    ("run", ["--particles", "3"], "particles"),
    ("run", ["--tsne-samples", "5"], "tsne_samples"),
    ("run", ["--theory-phases", ","], "theory_phases"),
    ("run", ["--classifier", "threshold", "--vertex-norm", "0.1"], "zero_norm must be below"),
    ("llc", ["--phase", "5,9"], "unknown phase"),
    ("llc", ["--n", "1"], "n must be"),
    ("relu", ["--values", "1.0,9"], "theta"),
    ("relu", ["--values", "1:2:0"], "--values must be"),
    ("relu", ["--values", "pi/0"], ""),
    ("relu", ["--llc-values", "abc"], "--llc-values must be"),
    ("relu", ["--llc-draws", "5"], "llc_draws"),
    ("wbic", ["--beta-ratio", "1"], "beta_ratio must differ"),
    ("wbic", ["--n", "1,100"], "n >= 2"),
    ("sweep", ["--model", "relu-pt1", "--n", "1,100"], "n must be >= 2"),
    # combinations
    ("sweep", ["--model", "relu-pt1", "--theta", "2"], "theta must be in"),
    ("sweep", ["--model", "relu-pt2", "--q-scale", "-1"], "vartheta"),
    ("run", ["--model", "relu-pt1"], "use tms-bayes sweep"),
    ("smc", ["--model", "relu-pt2"], "must be tms"),
    ("wbic", ["--beta", "0.5"], "WBIC sets β itself"),
    ("llc", ["--batch-size", "10"], "batch_size needs data='empirical'"),
    ("llc", ["--confine", "-1"], "confine must be a finite number >= 0"),
    ("llc", ["--sampler", "hmc"], "rmsprop_sgld"),
    ("relu", ["--values", "1.0,1.2", "--llc-values", "1.3"], "values of the sweep"),
    ("relu", ["--values", "1.0,1.0"], "must not repeat"),
    ("dynamics", ["--init-k", "1"], "init_k"),
    # missing or unknown arguments
    (None, ["frobnicate"], "invalid choice"),
    (None, ["sweep", "--no-such-option", "1"], "unrecognized arguments"),
    (None, ["relu"], "required"),
    (None, ["relu", "pt3"], "invalid choice"),
    (None, ["occupancy"], "required"),
    (None, ["compare"], "required"),
]


def _never_run(settings, out, **kwargs):
    raise AssertionError(f"bad input reached the computation: {settings!r}")


def _prepare(tmp_path, monkeypatch):
    """A working directory (default outputs land here) and a finished-looking empty sweep to point at.
    Every command's ``main`` except theory's (whose phase names are checked against the catalogue it
    computes, in seconds) is replaced by one that fails the test: validation must refuse the input
    before the computation starts, and a case that slips through fails at once instead of sampling."""
    import dataclasses

    import tms_bayes.experiments as experiments

    real = experiments.commands
    monkeypatch.setattr(
        experiments,
        "commands",
        lambda: [c if c.name == "theory" else dataclasses.replace(c, main=_never_run) for c in real()],
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)
    from tms_bayes.inference.sweep import SweepSettings
    from tms_bayes.store.rundir import RunDir

    sweep = tmp_path / "sweep"
    if not sweep.exists():
        RunDir(sweep, "sweep", SweepSettings(n=(100, 200), seeds=1).to_dict(), "a sweep").start()
    return cwd, sweep


def _snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def _refused(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    return code, err


def _check(argv, match, tmp_path, monkeypatch, capsys, *, out=True):
    cwd, sweep = _prepare(tmp_path, monkeypatch)
    argv = [a.replace("{sweep}", str(sweep)) for a in argv]
    if out:
        argv = [*argv, "--out", str(tmp_path / "out")]
    before = _snapshot(tmp_path)
    code, err = _refused(argv, capsys)
    assert code == 2, f"{argv}: exit {code}, stderr {err!r}"
    assert err.count("\n") == 1 and err.startswith("tms-bayes: error:"), f"{argv}: {err!r}"
    assert "Traceback" not in err
    assert match in err, f"{argv}: {err!r} lacks {match!r}"
    assert _snapshot(tmp_path) == before, f"{argv} wrote something"


def _with_positional(cmd, args):
    return [cmd, *([POSITIONAL[cmd]] if cmd in POSITIONAL else []), *args]


GENERATED = _generated_cases()


@pytest.mark.parametrize("cmd,args,match", GENERATED, ids=[f"{c}{' '.join(a)}" for c, a, _ in GENERATED])
def test_every_option_refuses_bad_values(cmd, args, match, tmp_path, monkeypatch, capsys):
    _check(_with_positional(cmd, args), match, tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("cmd,args,match", HAND_CASES, ids=[f"{c}{' '.join(a)}" for c, a, _ in HAND_CASES])
def test_ranges_combinations_and_arguments(cmd, args, match, tmp_path, monkeypatch, capsys):
    argv = _with_positional(cmd, args) if cmd else args
    _check(argv, match, tmp_path, monkeypatch, capsys, out=cmd is not None)


# ---- paths and files ----------------------------------------------------------------------------

COMMANDS_WITH_OUT = ["theory", "sweep", "run", "smc", "dynamics", "relu", "wbic", "llc", "compare"]


@pytest.mark.parametrize("cmd", COMMANDS_WITH_OUT)
def test_out_that_is_a_file_is_refused(cmd, tmp_path, monkeypatch, capsys):
    _prepare(tmp_path, monkeypatch)
    (tmp_path / "afile").write_text("keep me")
    _check(
        _with_positional(cmd, ["--out", str(tmp_path / "afile")]),
        "is a file",
        tmp_path,
        monkeypatch,
        capsys,
        out=False,
    )
    assert (tmp_path / "afile").read_text() == "keep me"


@pytest.mark.parametrize("cmd", COMMANDS_WITH_OUT)
def test_out_under_a_file_is_refused(cmd, tmp_path, monkeypatch, capsys):
    _prepare(tmp_path, monkeypatch)
    (tmp_path / "afile").write_text("keep me")
    _check(
        _with_positional(cmd, ["--out", str(tmp_path / "afile" / "sub")]),
        "is a file",
        tmp_path,
        monkeypatch,
        capsys,
        out=False,
    )


@pytest.mark.parametrize("cmd", ["theory", "smc", "dynamics", "relu", "wbic", "llc", "compare"])
def test_out_that_is_another_commands_run_directory_is_refused(cmd, tmp_path, monkeypatch, capsys):
    """A theory (or SMC, dynamics, …) run never writes into a sweep directory (it would overwrite the
    sweep's occupancy.nc/.png)."""
    _check(
        _with_positional(cmd, ["--out", "{sweep}"]),
        "holds a 'sweep' run",
        tmp_path,
        monkeypatch,
        capsys,
        out=False,
    )


@pytest.mark.parametrize("cmd", ["sweep", "run", "occupancy"])
def test_out_with_a_garbage_manifest_is_refused(cmd, tmp_path, monkeypatch, capsys):
    _prepare(tmp_path, monkeypatch)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    argv = ["occupancy", str(bad)] if cmd == "occupancy" else [cmd, "--out", str(bad)]
    _check(argv, "manifest", tmp_path, monkeypatch, capsys, out=False)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories"
)
@pytest.mark.parametrize("cmd", ["theory", "sweep"])
def test_read_only_out_is_refused(cmd, tmp_path, monkeypatch, capsys):
    _prepare(tmp_path, monkeypatch)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _check([cmd, "--out", str(ro / "x")], "not writable", tmp_path, monkeypatch, capsys, out=False)
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("cmd", ["occupancy", "criteria", "compare"])
@pytest.mark.parametrize("what", ["missing", "file", "smc", "empty"])
def test_inputs_that_are_not_what_they_claim(cmd, what, tmp_path, monkeypatch, capsys):
    _prepare(tmp_path, monkeypatch)
    target = tmp_path / "input"
    if what == "file":
        target.write_text("not a run")
    elif what == "smc":
        from tms_bayes.store.rundir import RunDir

        RunDir(target, "smc", {"x": 1}, "an SMC run").start()
    elif what == "empty":
        target.mkdir()
    if cmd == "compare" and what in ("smc", "empty"):  # a directory: refused when its files are read
        pytest.skip("compare reads run files; covered by tests/test_smc.py")
    _check([cmd, str(target)], "", tmp_path, monkeypatch, capsys, out=True)


def test_the_suite_is_large_enough():
    """The issue's bar: at least 150 bad inputs across all commands."""
    commands = {c for c, _, _ in GENERATED} | {c for c, _, _ in HAND_CASES if c}
    assert len(GENERATED) + len(HAND_CASES) >= 150
    assert commands >= {"theory", "sweep", "run", "smc", "llc", "dynamics", "relu", "wbic", "occupancy"}


def test_manifest_is_never_written_with_nan(tmp_path, monkeypatch, capsys):
    """--theta nan used to land in manifest.json as NaN (not JSON)."""
    _check(["sweep", "--theta", "nan"], "finite", tmp_path, monkeypatch, capsys)
    for path in tmp_path.rglob("manifest.json"):
        json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{path} holds {c}"))
