"""The deployment files: the systemd unit verifies, the Dockerfile lints clean, and the
package ships what the daemon needs at run time (schema, SQL, demo seed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing wrong with systemd/jobd.service (ExecStart
    pointed at this checkout's jobd, since jobd is not installed system-wide here)."""
    jobd = Path(sys.executable).with_name("jobd")
    unit = (ROOT / "systemd" / "jobd.service").read_text()
    assert "ExecStart=/usr/local/bin/jobd run -c /etc/jobd/jobd.yaml" in unit
    assert "Type=notify" in unit and "WatchdogSec=" in unit
    copy = tmp_path / "jobd.service"
    copy.write_text(unit.replace("/usr/local/bin/jobd", str(jobd)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_dockerfile_lints_clean() -> None:
    """hadolint (installed with the dev extra) reports nothing on the Dockerfile."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_reads_its_config_from_jobd_config_and_asks_jobd_health() -> None:
    """The image names its config once ($JOBD_CONFIG, which every command reads without
    -c) and its HEALTHCHECK asks `jobd health`, which finds the port in that config."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "JOBD_CONFIG=/etc/jobd/jobd.yaml" in dockerfile
    assert 'CMD ["jobd", "health"' in dockerfile
    assert "8370/healthz" not in dockerfile
    assert '"pgjobd==${JOBD_VERSION}"' in dockerfile


def test_package_ships_its_runtime_files() -> None:
    """The JSON Schema, the SQL files and the demo seed are package resources (they are
    read through importlib.resources, so an installed wheel has them too)."""
    package = resources.files("jobd")
    for name in (
        "config/jobd.schema.json",
        "sql/schema.sql",
        "sql/functions.sql",
        "sql/migrations/README.md",
        "sql/queries/jobs.sql",
        "demo/seed.sql",
    ):
        assert package.joinpath(name).is_file(), name
    assert (ROOT / "schema" / "jobd.schema.json").resolve() == (
        ROOT / "jobd" / "config" / "jobd.schema.json"
    ).resolve()
