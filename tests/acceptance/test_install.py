"""jobd as a user installs it: the sdist and the wheel are built from the checkout, the
wheel (built from the sdist, as `python -m build` does) goes into a fresh virtualenv
outside the checkout, and the installed `jobd` command runs there with nothing of the
checkout in reach: every SQL file, template and schema file it reads comes from the
installed package.

Building is `python -m build --no-isolation` (hatchling comes with the dev extra), so
the test needs the package index only for the wheel's own dependencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobd
from tests.acceptance import daemon_harness as h

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*argv: str | Path, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """A command with the environment of a user's shell: no PYTHONPATH, no JOBD_ variables,
    no virtualenv of this test run active."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JOBD_", "PYTHON", "VIRTUAL_ENV")) and k != "DATABASE_URL"
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: {result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built from the checkout."""
    out = tmp_path_factory.mktemp("dist")
    ok(run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out))
    (wheel,) = out.glob("pgjobd-*.whl")
    (sdist,) = out.glob("pgjobd-*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def installed(dist: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin/ folder of a fresh virtualenv, outside the checkout, with the wheel in it."""
    home = tmp_path_factory.mktemp("user")
    ok(run(sys.executable, "-m", "venv", home / "venv", cwd=home))
    bin_dir = home / "venv" / "bin"
    ok(run(bin_dir / "pip", "install", "--quiet", "--disable-pip-version-check", dist[0], cwd=home))
    yield bin_dir


def test_wheel_holds_every_file_of_the_package(dist: tuple[Path, Path]) -> None:
    """Every file under jobd/ in the checkout (SQL, JSON Schema, seed, templates, code) is
    in the wheel, and the example configuration with it (for `jobd demo`); the sdist has
    what a build from it needs."""
    wheel, sdist = dist
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "jobd"
    files = {
        p.relative_to(ROOT).as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    }
    assert files - names == set()
    assert "jobd/demo/config.example.yaml" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for needed in ("pyproject.toml", "README.md", "CHANGELOG.md", "config.example.yaml"):
        assert needed in members, needed
    assert {f for f in files if f.endswith(".sql")} <= members


def test_installed_wheel_runs_outside_the_checkout(
    installed: Path, database_url: str, tmp_path: Path
) -> None:
    """From a fresh virtualenv and a folder outside the checkout: `jobd --version`, `jobd
    schema`, `jobd check -c config.example.yaml`, `jobd migrate --dry-run` and `jobd
    migrate` (a new schema on a test database) work, the package is the installed one
    (not the checkout's), and a daemon run from there answers `jobd health`."""
    jobd_bin = installed / "jobd"
    where = ok(run(installed / "python", "-c", "import jobd; print(jobd.__file__)", cwd=tmp_path))
    assert Path(where.strip()).is_relative_to(installed.parent), where
    assert not Path(where.strip()).is_relative_to(ROOT)

    assert ok(run(jobd_bin, "--version", cwd=tmp_path)).strip() == f"jobd {jobd.__version__}"
    schema = json.loads(ok(run(jobd_bin, "schema", cwd=tmp_path)))
    assert schema == json.loads((ROOT / "jobd" / "config" / "jobd.schema.json").read_text())

    example = tmp_path / "config.example.yaml"
    example.write_text((ROOT / "config.example.yaml").read_text())
    out = ok(run(jobd_bin, "check", "-c", "config.example.yaml", cwd=tmp_path))
    assert out.startswith("config.example.yaml: OK: 3 resources, 4 triggers"), out

    port = h.free_port()
    config = tmp_path / "jobd.yaml"
    config.write_text(
        f'version: 1\ndatabase: {{url: "{database_url}", schema: installed}}\n'
        f'admin: {{listen: "127.0.0.1:{port}"}}\nlog: {{format: json}}\n'
    )
    dry = ok(run(jobd_bin, "migrate", "--dry-run", "-c", config, cwd=tmp_path))
    assert "schema installed: not installed; would create it" in dry, dry
    migrated = ok(run(jobd_bin, "migrate", "-c", config, cwd=tmp_path))
    assert migrated.startswith("schema installed: applied migrations 1, 2"), migrated
    assert ok(run(jobd_bin, "migrate", "--dry-run", "-c", config, cwd=tmp_path)).startswith(
        "schema installed: up to date"
    )

    daemon = subprocess.Popen(
        [str(jobd_bin), "run", "-c", str(config)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        h.wait_for(
            lambda: run(jobd_bin, "health", "--ready", "-c", config, cwd=tmp_path).returncode == 0,
            timeout_s=30,
            what="the installed daemon to answer jobd health --ready",
        )
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
