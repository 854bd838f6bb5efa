"""The corpus of malformed configurations: each gives exactly its expected messages.

Every file in tests/data/bad_configs/ starts with one `# expect: LINE:COL: PATH: MESSAGE`
line per problem `jobd check` must report, in order; nothing else may be reported, the
exit code is 2, and no traceback is ever printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobd.cli.main import main

CORPUS = Path(__file__).parents[2] / "data" / "bad_configs"
FILES = sorted(CORPUS.glob("*.yaml"))


def expectations(path: Path) -> list[str]:
    prefix = "# expect: "
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def test_corpus_is_large_enough() -> None:
    """The issue asks for at least 40 malformed configurations, each with expectations."""
    assert len(FILES) >= 40
    assert all(expectations(f) for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_bad_config_reports_exactly_its_problems(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jobd check -c FILE` exits 2 and prints each expected FILE:LINE:COL message, only those."""
    monkeypatch.delenv("JOBD_TEST_SURELY_UNSET_VAR", raising=False)
    code = main(["check", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    expected = [f"{path}:{line}" for line in expectations(path)]
    reported = err.splitlines()
    count = len(expected)
    assert reported == [*expected, f"{count} problem{'s' if count != 1 else ''} found"]
