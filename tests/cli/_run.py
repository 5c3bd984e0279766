"""Drive the CLI in-process: exit code, stdout and stderr of one ``loopml`` command."""

from __future__ import annotations

import pytest

from loopml.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``loopml ARGV...``; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err
