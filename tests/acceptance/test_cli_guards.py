"""The CLI's guard rails as a user meets them, the real `jobd` as a process: a queue is
made only on purpose and removed when no configuration needs it, and `jobd run` refuses
an open admin listener without a token before it touches the database."""

from __future__ import annotations

from pathlib import Path

from tests.hostile.support import SETUP_SQL, assert_no_leak, config_text, execute, jobd


def test_queues_create_and_remove(database_url: str, tmp_path: Path) -> None:
    """`queues pause NEW --create` makes a queue that `queues list` shows; `queues remove`
    forgets it; removing it again says it is unknown (exit 2)."""
    execute(database_url, SETUP_SQL)
    config = tmp_path / "jobd.yaml"
    config.write_text(config_text(database_url))
    c = ("-c", str(config))
    made = jobd("queues", "pause", "webhooks", "--create", *c)
    assert made.returncode == 0 and made.stdout == "queue webhooks: paused, limit - per node\n"
    assert "webhooks" in jobd("queues", "list", *c).stdout
    removed = jobd("queues", "remove", "webhooks", *c)
    assert removed.returncode == 0 and removed.stdout == "queue webhooks: removed\n"
    assert "webhooks" not in jobd("queues", "list", *c).stdout
    again = jobd("queues", "remove", "webhooks", *c)
    assert again.returncode == 2 and "unknown queue 'webhooks'" in again.stderr
    assert_no_leak(made.stdout + removed.stdout + again.stderr, "queues")


def test_run_refuses_an_open_listener_without_token_before_the_database(tmp_path: Path) -> None:
    """`admin.listen: 0.0.0.0:...` with no token: `jobd run` exits 2 with the config
    position and what to do; the database (unreachable here) is never contacted."""
    config = tmp_path / "jobd.yaml"
    config.write_text(
        'version: 1\ndatabase: {url: "postgresql://u:pw-SECRET@127.0.0.1:1/x"}\n'
        'admin: {listen: "0.0.0.0:8370"}\n'
    )
    result = jobd("run", "-c", str(config), timeout_s=30)
    assert result.returncode == 2, result.stderr
    assert f"{config}:3:17: admin.listen: 0.0.0.0:8370 is not a loopback address" in result.stderr
    assert "set admin.token" in result.stderr
    assert "connect" not in result.stderr
    assert_no_leak(result.stdout + result.stderr, "run")
