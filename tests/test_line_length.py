"""No line of the package is longer than 110 characters (issue 15; ``ruff format --line-length 110``
keeps code there, strings and comments are wrapped by hand)."""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tms_bayes"
LIMIT = 110


def test_no_line_over_110_characters():
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{i}: {len(line)}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if len(line) > LIMIT
    ]
    assert not long, "lines over 110 characters:\n" + "\n".join(long)


def test_the_cli_is_thin():
    """cli.py parses and dispatches; the workflows live in tms_bayes.experiments."""
    assert len((PACKAGE / "cli.py").read_text(encoding="utf-8").splitlines()) < 200
