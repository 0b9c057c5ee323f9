"""Load generators: wrk with a Lua script when present, else an asyncio client."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

_SCRIPT = Path(__file__).with_name("post.lua")
_MARK = "BENCH "


@dataclass(frozen=True)
class Result:
    """One measurement: throughput, latency percentiles and failures."""

    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    failures: int

    @property
    def rate(self) -> float:
        """Requests answered per second."""
        return self.requests / self.duration_s if self.duration_s else 0.0


@dataclass(frozen=True)
class Load:
    """What to send: one POST, repeated by `connections` clients at once."""

    url: str
    body: bytes
    headers: dict[str, str]
    connections: int
    duration_s: float


def generator_name() -> str:
    """`wrk` when it is on the PATH, otherwise `asyncio`."""
    return "wrk" if shutil.which("wrk") else "asyncio"


def measure(load: Load, cpu: int | None = None, generator: str | None = None) -> Result:
    """Run `load` with `generator` (default: the best at hand) pinned to `cpu`."""
    if (generator or generator_name()) == "wrk":
        return _wrk(load, cpu)
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return asyncio.run(_asyncio_load(load))
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        return asyncio.run(_asyncio_load(load))
    finally:
        os.sched_setaffinity(0, allowed)


def _wrk(load: Load, cpu: int | None) -> Result:
    command = [
        "wrk", "-t1", f"-c{load.connections}", f"-d{_whole_s(load.duration_s)}s",
        "--timeout", "30s", "--latency", "-s", str(_SCRIPT), load.url,
    ]  # fmt: skip
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    env = {
        **os.environ,
        "BENCH_BODY": load.body.decode(),
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in load.headers.items()),
    }
    timeout_s = load.duration_s + 60
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout_s, check=True
    )
    line = next(
        (row for row in done.stdout.splitlines() if row.startswith(_MARK)), None
    )
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout}{done.stderr}")
    numbers = orjson.loads(line[len(_MARK) :])
    return Result(
        requests=numbers["requests"],
        duration_s=numbers["duration_us"] / 1e6,
        p50_ms=numbers["p50_us"] / 1e3,
        p99_ms=numbers["p99_us"] / 1e3,
        failures=numbers["errors"] + numbers["non_2xx"],
    )


def _whole_s(duration_s: float) -> int:
    """wrk takes whole seconds only."""
    return max(1, math.ceil(duration_s))


async def _asyncio_load(load: Load) -> Result:
    latencies_s: list[float] = []
    failures = 0
    headers = {"Content-Type": "application/json", **load.headers}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while True:
            started = time.perf_counter()
            try:
                async with session.post(load.url, data=load.body) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies_s.append(time.perf_counter() - started)
            failures += not ok

    connector = aiohttp.TCPConnector(limit=load.connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.perf_counter()
        clients = [
            asyncio.ensure_future(client(session)) for _ in range(load.connections)
        ]
        # As wrk does: stop at the deadline; answers still due are not counted.
        await asyncio.wait(clients, timeout=load.duration_s)
        elapsed_s = time.perf_counter() - started
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return Result(
        requests=len(latencies_s),
        duration_s=elapsed_s,
        p50_ms=_percentile(latencies_s, 50) * 1e3,
        p99_ms=_percentile(latencies_s, 99) * 1e3,
        failures=failures,
    )


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))
    return ordered[index]
