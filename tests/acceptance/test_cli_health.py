"""`jobd health` as the container's HEALTHCHECK and an exec probe run it: the address comes
from the configuration's admin.listen (any port), the answer is the exit code, and a
failure is one line naming the URL, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.acceptance import daemon_harness as h

db, port, daemon_for = h.db, h.port, h.daemon_for  # fixtures


def test_health_asks_the_listener_the_config_names(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """With a daemon on a random port, `jobd health` and `jobd health --ready` exit 0;
    $JOBD_CONFIG stands in for -c; after the daemon stops, exit 1 with the URL asked."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    daemon = daemon_for(config)
    daemon.start()
    alive = h.run_cli("health", "-c", str(config))
    assert alive.returncode == 0, alive.stderr
    assert alive.stdout == f"/healthz: ok (http://127.0.0.1:{port}/healthz)\n"
    ready = h.run_cli("health", "--ready", env={"JOBD_CONFIG": str(config)})
    assert ready.returncode == 0, ready.stderr
    assert daemon.stop() == 0

    gone = h.run_cli("health", "-c", str(config))
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"jobd: no answer from http://127.0.0.1:{port}/healthz (")
    assert "Traceback" not in gone.stderr


def test_health_without_a_listener_is_a_usage_error(tmp_path: Path) -> None:
    """admin.listen: off leaves nothing to ask: exit 2 with what to set; a wildcard listen
    address is asked on loopback."""
    config = tmp_path / "jobd.yaml"
    config.write_text("version: 1\nadmin: {listen: 'off'}\n")
    result = h.run_cli("health", "-c", str(config))
    assert result.returncode == 2
    assert "admin.listen is off" in result.stderr and "Traceback" not in result.stderr

    from jobd.cli.health import probe_url

    assert probe_url("0.0.0.0:9000", "/healthz") == "http://127.0.0.1:9000/healthz"
    assert probe_url("[::]:9000", "/readyz") == "http://[::1]:9000/readyz"
