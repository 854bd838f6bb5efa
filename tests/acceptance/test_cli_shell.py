"""The CLI at an operator's shell: completion scripts generated from the real parser
complete commands, actions and choices in bash; `jobd status --watch` redraws until
Ctrl-C and then exits 0 without a traceback."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.acceptance import daemon_harness as h

ROOT = Path(__file__).resolve().parents[2]


def ctrl_c_as_at_a_terminal() -> None:
    """In the child: SIGINT handled by default, as at a terminal. A test run started in
    the background by a non-interactive shell (`bash -c '... &'`) has SIGINT ignored, the
    children inherit that, and Python then never turns Ctrl-C into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


COMPLETE = """
source {script}
complete -p jobd
ask() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
        COMPREPLY=(); _shtab_jobd jobd "${{COMP_WORDS[-1]}}" "${{COMP_WORDS[-2]}}"
        echo "$*| ${{COMPREPLY[*]}}"; }}
ask jobd que
ask jobd queues ''
ask jobd jobs list --state ''
ask jobd migrate --dr
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash absent")
def test_bash_completion_completes_commands_actions_and_choices(tmp_path: Path) -> None:
    """`jobd completion bash`, sourced, registers a completion for jobd that offers the
    command, the queues actions, the job states and the migrate options."""
    out = h.run_cli("completion", "bash")
    assert out.returncode == 0, out.stderr
    script = tmp_path / "jobd.bash"
    script.write_text(out.stdout)
    result = subprocess.run(
        ["bash", "-c", COMPLETE.format(script=script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("complete ") and lines[0].endswith(" jobd")
    assert "jobd que| queues" in lines
    assert "jobd queues | list pause resume scale remove" in lines
    assert any(line.startswith("jobd jobs list --state | available scheduled") for line in lines)
    assert "jobd migrate --dr| --dry-run" in lines


def test_zsh_and_bad_shell() -> None:
    """`jobd completion zsh` prints a #compdef script (checked by zsh -n when zsh is
    there); an unknown shell is a usage error naming the choices."""
    out = h.run_cli("completion", "zsh")
    assert out.returncode == 0 and out.stdout.startswith("#compdef jobd")
    if shutil.which("zsh"):
        check = subprocess.run(["zsh", "-n"], input=out.stdout, text=True, check=False)
        assert check.returncode == 0
    bad = h.run_cli("completion", "fish")
    assert bad.returncode == 2 and "choose from 'bash', 'zsh', 'tcsh'" in bad.stderr


def test_status_watch_redraws_until_ctrl_c(database_url: str, tmp_path: Path) -> None:
    """`jobd status --watch 0.2` prints a snapshot again and again; SIGINT (Ctrl-C) ends
    it with exit 0 and nothing on stderr."""
    config = tmp_path / "jobd.yaml"
    config.write_text(f'version: 1\ndatabase: {{url: "{database_url}"}}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", "status", "--watch", "0.2", "-c", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_at_a_terminal,
    )
    headers: list[str] = []
    seen_two = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("jobd status at "):
                headers.append(line)
                if len(headers) >= 2:
                    seen_two.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert seen_two.wait(30), "no second snapshot"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
    finally:  # on a failure too: no process or pipe outlives the test
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        errors = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert code == 0 and errors == ""
    assert "every 0.2s (Ctrl-C stops)" in headers[0]


@pytest.mark.parametrize("after_s", [0.05, 0.15, 0.3, 0.6])
def test_ctrl_c_while_the_cli_starts_shows_no_traceback(after_s: float, tmp_path: Path) -> None:
    """Ctrl-C at any moment of start-up (while the CLI's modules still load: half a second
    or more on a busy machine) ends the command without a traceback: exit 130 (or the
    signal itself, before Python's handler exists), or 0 when `--watch` already ran."""
    config = tmp_path / "jobd.yaml"
    config.write_text('version: 1\ndatabase: {url: "postgresql://127.0.0.1:1/none"}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", "status", "--watch", "1", "-c", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_at_a_terminal,
    )
    threading.Event().wait(after_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "Traceback" not in err, err
    assert proc.returncode in (0, 130, -signal.SIGINT, 1), (proc.returncode, err)
