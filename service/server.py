"""Serving: one process, or a supervisor of workers that share the port."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence

import uvloop
from aiohttp import web
from prometheus_client import multiprocess

from . import observability
from .app import create_app
from .settings import Settings

log = logging.getLogger("service.server")

# Set by the supervisor in each worker's environment; never by users.
WORKER_ENV = "HPO_WORKER_INDEX"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# In-flight requests may take this long to finish once listening has stopped;
# a request waits for at most a few Redis timeouts, so this is generous.
DRAIN_LIMIT_S = 10.0


def run(settings: Settings, argv: Sequence[str]) -> int:
    """Serve until SIGTERM or SIGINT and return the exit status."""
    if settings.workers > 1 and WORKER_ENV not in os.environ:
        return _supervise(settings, argv)
    # uvloop: about a tenth less CPU per request (docs/benchmarks.md).
    uvloop.run(serve(settings, reuse_port=settings.workers > 1))
    return 0


async def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Listen, answer until signalled, then drain and close gracefully."""
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        access_log_class=observability.AccessLog,
        access_log=observability.access_log,
        shutdown_timeout=DRAIN_LIMIT_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, settings.host, settings.port, reuse_port=reuse_port or None
        )
        await site.start()
        address = f"http://{settings.host}:{settings.port}"
        log.info("listening on %s", address, extra={"address": address})
        await _until_signalled()
        await _drain(app, settings.shutdown_grace_s)
    finally:
        # Stops listening, waits for in-flight requests, then closes Redis.
        await runner.cleanup()
    log.info("stopped")


async def _drain(app: web.Application, grace_s: float) -> None:
    """Report not ready at once, and keep accepting while balancers notice."""
    app[observability.HEALTH].draining = True
    log.info("draining: not ready; new connections stop in %.1f s", grace_s)
    await asyncio.sleep(grace_s)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sign in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sign, stop.set)
    await stop.wait()


def _supervise(settings: Settings, argv: Sequence[str]) -> int:
    """Start the workers, pass stop signals on, and wait for all of them."""
    own_dir = METRICS_DIR_ENV not in os.environ
    metrics_dir = os.environ.get(METRICS_DIR_ENV) or tempfile.mkdtemp(
        prefix="hpo-metrics-"
    )
    _empty(metrics_dir)
    env = {**os.environ, METRICS_DIR_ENV: metrics_dir}
    if settings.token_secret_generated:
        # Workers must share one key, or a token from one fails on another.
        env["HPO_TOKEN_SECRET"] = secrets.token_urlsafe(32)

    command = [sys.executable, "-m", "service", "serve", *argv]
    supervisor = _Supervisor(metrics_dir)
    try:
        for index in range(settings.workers):
            env[WORKER_ENV] = str(index)
            supervisor.add(subprocess.Popen(command, env=env))
        log.info("started %d workers", settings.workers,
                 extra={"workers": settings.workers})  # fmt: skip
        return supervisor.wait()
    finally:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


class _Supervisor:
    """Worker processes, and the stop signals passed on to them."""

    def __init__(self, metrics_dir: str) -> None:
        self.metrics_dir = metrics_dir
        self.alive: dict[int, subprocess.Popen] = {}
        self.stopping = False
        # Installed before any worker starts, so none is ever orphaned.
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self.reload)

    def add(self, process: subprocess.Popen) -> None:
        """Watch a started worker; stop it at once if stopping already."""
        self.alive[process.pid] = process
        if self.stopping:
            os.kill(process.pid, signal.SIGTERM)

    def stop(self, signum: int = signal.SIGTERM, frame: object = None) -> None:
        """Ask every live worker to drain and exit."""
        self.stopping = True
        for pid in list(self.alive):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                self.alive.pop(pid, None)

    def reload(self, signum: int = signal.SIGHUP, frame: object = None) -> None:
        """Pass SIGHUP on: each worker re-reads its credentials file."""
        for pid in list(self.alive):
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                self.alive.pop(pid, None)

    def wait(self) -> int:
        """Reap workers; one that dies on its own stops the rest, status 1."""
        status = 0
        while self.alive:
            pid, wait_status = os.wait()  # retried after a signal handler runs
            if pid not in self.alive:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            self.alive.pop(pid).returncode = code
            # Its in-flight gauge would otherwise count forever in the sum.
            multiprocess.mark_process_dead(pid, self.metrics_dir)
            # A worker still starting when asked to stop dies of the signal.
            if self.stopping and code == -signal.SIGTERM:
                continue
            if code != 0 or not self.stopping:
                log.error("worker %d exited with status %d", pid, code)
                status = 1
                self.stop()
        return status


def _empty(directory: str) -> None:
    """Remove metric files a previous run left, so counts start at zero."""
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))
