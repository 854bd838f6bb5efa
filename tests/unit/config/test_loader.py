"""Reading the file: positions, duplicate keys, ${VAR} interpolation, file-level errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobd.config import load_config, load_config_text
from jobd.errors import ConfigError, Problem

BASE = "version: 1\n"


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "t.yaml", env=env or {})
    return [str(p) for p in caught.value.problems]


def test_problem_format_matches_the_contract() -> None:
    """str(Problem) is FILE:LINE:COL: key.path: message."""
    problem = Problem("jobd.yaml", 12, 7, "a.b", "bad")
    assert str(problem) == "jobd.yaml:12:7: a.b: bad"


def test_whole_reference_becomes_the_number_the_schema_expects() -> None:
    """`pool_size: ${POOL}` with POOL=20 is the integer 20, not the string "20"."""
    spec = load_config_text(
        BASE + "database:\n  pool_size: ${POOL}\nlog:\n  debug_all_triggers: '${DBG:-true}'\n",
        env={"POOL": "20"},
    )
    assert spec.database.pool_size == 20
    assert spec.log.debug_all_triggers is True


def test_digits_stay_a_string_where_a_string_is_expected() -> None:
    """A token made of digits is still the string the schema wants."""
    spec = load_config_text(BASE + "admin:\n  token: ${TOKEN}\n", env={"TOKEN": "0123"})
    assert spec.admin.token == "0123"


def test_reference_not_a_number_reports_the_type() -> None:
    """A whole reference that does not read as a number is reported at the value."""
    assert problems(BASE + "database:\n  pool_size: ${POOL}\n", {"POOL": "many"}) == [
        't.yaml:3:14: database.pool_size: must be an integer (got string "many")'
    ]


def test_empty_reference_counts_as_absent() -> None:
    """`url: ${DATABASE_URL:-}` unset means no url (embedded Postgres), not an empty URL."""
    spec = load_config_text(
        BASE + "database:\n  url: ${DATABASE_URL:-}\nnode: ${HOSTNAME:-}\n", env={}
    )
    assert spec.database.url is None
    assert spec.node is None


def test_default_applies_to_unset_and_empty_but_not_to_set() -> None:
    """${NAME:-default} follows the shell: unset or empty gives the default."""
    text = BASE + "node: ${N:-fallback}\n"
    assert load_config_text(text, env={}).node == "fallback"
    assert load_config_text(text, env={"N": ""}).node == "fallback"
    assert load_config_text(text, env={"N": "n1"}).node == "n1"


def test_interpolation_inside_text_and_escape() -> None:
    """References inside a longer string are replaced; $${ writes a literal ${."""
    spec = load_config_text(BASE + 'node: "a-${X}-$${Y}"\n', env={"X": "1"})
    assert spec.node == "a-1-${Y}"


def test_missing_variable_is_named_at_its_own_column() -> None:
    """The message names the variable and points at the reference, not the line start."""
    assert problems(BASE + 'node: "prefix ${NOPE} suffix"\n') == [
        "t.yaml:2:15: node: environment variable 'NOPE' is not set "
        "(write ${NOPE:-default} to give a default)"
    ]


def test_every_missing_variable_is_reported() -> None:
    """Two missing variables give two problems, and no follow-up noise."""
    found = problems(BASE + "node: ${A}\nadmin: {token: '${B}'}\n")
    assert len(found) == 2
    assert "'A'" in found[0] and "'B'" in found[1]


def test_keys_are_not_interpolated() -> None:
    """A key is taken as written, so ${X} in a key is an unknown key, not a lookup."""
    assert "unknown key '${X}'" in problems(BASE + "${X}: 1\n", {"X": "node"})[0]


def test_duplicate_key_points_at_the_duplicate() -> None:
    """Duplicate keys are reported at the second occurrence, naming the first."""
    assert problems(BASE + "node: a\nnode: b\n") == [
        "t.yaml:3:1: node: duplicate key 'node' (first defined at line 2, column 1)"
    ]


def test_anchors_and_merges_work() -> None:
    """YAML anchors and `<<` merges are resolved like any YAML loader does."""
    text = BASE + "queues:\n  a: &q {limit: 3, global_limit: 9}\n  b:\n    <<: *q\n    limit: 4\n"
    spec = load_config_text(text, env={})
    assert (spec.queues["a"].limit, spec.queues["b"].limit) == (3, 4)
    assert spec.queues["b"].global_limit == 9


def test_absurd_nesting_is_a_problem_not_a_crash() -> None:
    """Deeply nested values are refused before any recursion can overflow."""
    depth = 400
    text = BASE + "node: " + "[" * depth + "]" * depth + "\n"
    assert any("nested too deeply" in p for p in problems(text))


def test_alias_bomb_is_refused() -> None:
    """A "billion laughs" document stops at the node budget."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    assert any("too large" in p for p in problems("\n".join(lines)))


def test_missing_file_is_a_clear_config_error(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the file, never a traceback."""
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: configuration file not found " + (
        "(give one with -c FILE)"
    )


def test_directory_and_binary_files_are_config_errors(tmp_path: Path) -> None:
    """A directory or a non-UTF-8 file gives one clear problem."""
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"version: 1\nnode: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"bin.yaml:2:1: not UTF-8 text"):
        load_config(binary)


def test_env_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without env=..., variables come from os.environ."""
    monkeypatch.setenv("JOBD_TEST_NODE", "from-env")
    assert load_config_text(BASE + "node: ${JOBD_TEST_NODE}\n").node == "from-env"
