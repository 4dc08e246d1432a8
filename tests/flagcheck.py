"""One check for every command's flag errors: argparse's one line, exit status 2."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest


def flag_error(capsys: pytest.CaptureFixture[str], parse: Callable[[Sequence[str]], object],
               argv: Sequence[str], *, prog: str) -> str:
    """Run ``parse(argv)``, expect exit 2 with exactly ``prog: error: …`` on stderr, and
    return that line."""
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return err.strip()
