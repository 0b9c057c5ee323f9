"""Helpers the tests share: command-line tools and child processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .redis_servers import free_port


def beside_interpreter(name: str) -> str:
    """A tool a test wheel installs beside this interpreter, or one on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"no {name}: pip install '.[test]' brings one")
    return found


def stderr_of(process: subprocess.Popen) -> str:
    """What a child process wrote to its standard error, as text."""
    assert process.stderr is not None, "the process was started without a pipe"
    written = process.stderr.read()
    return written.decode() if isinstance(written, bytes) else written


def start_service(
    env: dict[str, str | None], *, stdout: int, stderr: int
) -> tuple[subprocess.Popen, int]:
    """`python -m service` on a free loopback port: the process and its port.

    `env` goes over this process's environment; a None value removes the
    variable. The metrics directory of a test run is never inherited.
    """
    port = free_port()
    full: dict[str, str | None] = {
        **os.environ,
        "HPO_PORT": str(port),
        "HPO_TOKEN_SECRET": "test",
        "PROMETHEUS_MULTIPROC_DIR": None,
        **env,
    }
    chosen = {name: value for name, value in full.items() if value is not None}
    process = subprocess.Popen(
        [sys.executable, "-m", "service"], env=chosen, stdout=stdout, stderr=stderr
    )
    return process, port
