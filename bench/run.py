"""`python bench/run.py`: the service against the bare stack and moto, on loopback.

Starts a redis-server, the service (`python -m service`), the bare stack
(`bench/bare.py`) and moto's server (`bench/moto_server.py`), seeds tuning jobs
with the `seed` command (run in this process), measures each query several
rounds over, alternating the systems, and writes medians, ratios and targets
as Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import aiohttp
import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python bench/run.py`
    sys.path.insert(0, str(ROOT))

from bench import loadgen, report  # noqa: E402
from service import cli, storage, tokens  # noqa: E402

ACCOUNT = "123456789012"
METRIC = "FinalObjectiveMetricValue"
MOTO_HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "SageMaker.ListTrainingJobs",
    # moto picks the service from the credential scope; it checks no signature.
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/"
    "sagemaker/aws4_request, SignedHeaders=host, Signature=0",
}


@dataclass(frozen=True)
class Plan:
    """What one run measures, and how long each measurement lasts."""

    sizes: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
    moto_jobs: int = 10_000
    walk_jobs: int = 100_000
    rounds: int = 3
    duration_s: float = 5.0
    connections: int = 32
    generator: str = field(default_factory=loadgen.generator_name)
    # Pin servers and generator to separate cores (when there are two or more).
    pin: bool = True
    # Compare HPO_WORKERS = cores with one worker.
    workers: bool = True


# Seconds, not minutes: the asyncio client, as wrk measures whole seconds only.
QUICK = Plan(
    sizes=(200, 1_000),
    moto_jobs=200,
    walk_jobs=1_000,
    rounds=1,
    duration_s=0.25,
    generator="asyncio",
    pin=False,
    workers=False,
)


_STARTED = time.monotonic()


def say(line: str) -> None:
    """Print a progress line, with the seconds since the run started."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {line}", flush=True)


# Processes.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(command: list[str], cpus: set[int] | None) -> list[str]:
    """`command` run on `cpus` only, when taskset can pin it."""
    if not cpus or not shutil.which("taskset"):
        return command
    return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]


class Processes:
    """Servers started for the run; every one is stopped when the run ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Start `command` with its output in `<directory>/<name>.log`."""
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        """Stop one server: TERM, then KILL if it lingers."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        """Stop every server still running, all at once."""
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in list(self.started):
            self.stop(process)


def cpu_seconds(pid: int | None) -> float | None:
    """User and system CPU seconds a process has used, where /proc tells."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are the 14th and 15th fields; the split starts at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float) -> None:
    """Return once `port` accepts connections; fail if `process` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s} s")


# Seeding and queries.


def tuning_job_name(size: int) -> str:
    """The tuning job holding `size` training jobs."""
    return f"bench-{size}"


def seed(redis_url: str, size: int) -> str:
    """Seed a tuning job with the `seed` command, in this process.

    The command is the one `python -m service seed` runs; running it here
    saves starting Python once per size. Returns the command's last line.
    """
    words = [
        "seed", "--redis-url", redis_url, "--account", ACCOUNT,
        "--tuning-job", tuning_job_name(size), "--jobs", str(size),
        "--hyperparameters", "2", "--quiet",
    ]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main(words)
    if status != 0:
        raise RuntimeError(f"seed exited with {status}: {printed.getvalue()}")
    return printed.getvalue().strip().splitlines()[-1]


def query_body(query: str, size: int, deep_token: str = "") -> dict:
    """The ListTrainingJobsForTuningJob body of one of the QUERIES."""
    body: dict = {"AwsAccountId": ACCOUNT, "TuningJobName": tuning_job_name(size)}
    if query == "a":
        return body
    body.update(MaxResults=100, SortBy=METRIC, SortOrder="Descending")
    if query == "c":
        body["TrainingJobStatusEquals"] = "Completed"
    if query == "d":
        body["NextToken"] = deep_token
    return body


MOTO_BODY = {
    "MaxResults": 100,
    "SortBy": "CreationTime",
    "SortOrder": "Descending",
    "StatusEquals": "Completed",
}


def deep_cursor(client: redis.Redis, size: int) -> tuple[tokens.Cursor, str]:
    """The cursor after 90% of the metric-descending order, and the next name.

    Reads the scored sets once, here in the benchmark, to find the job at
    that depth; the service itself never walks a tuning job.
    """
    keys = storage._keys(ACCOUNT, tuning_job_name(size))
    scored: list[tuple[float, bytes]] = []
    for key in keys[2 + storage.STATUS_COUNT :]:
        scored += [
            (score, name) for name, score in client.zrange(key, 0, -1, withscores=True)
        ]
    scored.sort(reverse=True)
    at = int(len(scored) * 0.9) - 1
    score, name = scored[at]
    return tokens.Cursor(name.decode(), score), scored[at + 1][1].decode()


def deep_token(secret: bytes, size: int, cursor: tokens.Cursor) -> str:
    """A NextToken resuming query (b) after `cursor`, signed as the service does."""
    # The fields a token is bound to, in the order the handler joins them.
    query = "\0".join(
        (ACCOUNT, tuning_job_name(size), METRIC, "Descending", "")
    ).encode()
    return tokens.issue(secret, query, cursor)


def post(url: str, body: dict, headers: dict[str, str] | None = None) -> bytes:
    """One request; the answer's body, which must come with status 200."""
    return asyncio.run(_post(url, orjson.dumps(body), headers or {}))


async def _post(url: str, body: bytes, headers: dict[str, str]) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        payload = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {payload[:300]!r}")
        return payload


async def walk(base_url: str, size: int) -> tuple[float, int, int]:
    """Seconds to walk every page of 100 by name; pages and jobs seen."""
    body: dict = {**query_body("a", size), "MaxResults": 100}
    pages = jobs = 0
    url = f"{base_url}/ListTrainingJobsForTuningJob"
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.post(url, data=orjson.dumps(body)) as response:
                page = orjson.loads(await response.read())
            if response.status != 200:
                raise RuntimeError(f"walk failed: {page}")
            pages += 1
            jobs += len(page["TrainingJobSummaries"])
            if "NextToken" not in page:
                return time.perf_counter() - started, pages, jobs
            body["NextToken"] = page["NextToken"]


# The run.


@dataclass
class Results:
    """Every measurement, kept per (system, query, size), in the order taken."""

    runs: dict[tuple[str, str, int], list[loadgen.Result]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # The server's CPU microseconds per request, per measurement, when known.
    cpu_us: dict[tuple[str, str, int], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    memory_per_job: dict[int, float] = field(default_factory=dict)
    seed_lines: dict[int, str] = field(default_factory=dict)
    walk_s: list[float] = field(default_factory=list)
    walk_pages: int = 0
    workers: int = 0
    # Cores left to the servers; 0 when nothing is pinned.
    free_cores: int = 0

    def median(self, key: tuple[str, str, int], attribute: str) -> float:
        """The median of one number over the rounds of one measurement."""
        return statistics.median(getattr(r, attribute) for r in self.runs[key])

    def cpu(self, key: tuple[str, str, int]) -> float | None:
        """The median server CPU microseconds per request, when measured."""
        values = self.cpu_us.get(key)
        return statistics.median(values) if values else None

    def failures(self) -> int:
        """Requests that failed in any measurement."""
        return sum(r.failures for runs in self.runs.values() for r in runs)


class Bench:
    """One benchmark run: its servers, its plan and what it measured."""

    def __init__(self, plan: Plan, directory: Path) -> None:
        self.plan = plan
        self.processes = Processes(directory)
        self.secret = secrets.token_hex(16)
        self.results = Results()
        cpus = []
        if plan.pin and hasattr(os, "sched_getaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
        # The load generator gets the last core; the servers and Redis the rest.
        self.generator_cpu: int | None = cpus[-1] if len(cpus) > 1 else None
        self.server_cpus: set[int] | None = set(cpus[:-1]) if len(cpus) > 1 else None
        self.ports: dict[str, int] = {}
        self.pids: dict[str, int] = {}
        self.workers = os.cpu_count() or 1
        self.results.workers = self.workers
        self.results.free_cores = len(self.server_cpus or ())

    def url(self, system: str) -> str:
        """The base URL of a started system."""
        return f"http://127.0.0.1:{self.ports[system]}"

    def start_all(self) -> redis.Redis:
        """Start Redis, the service (twice), the bare stack and moto; wait."""
        names = ("redis", "service", "workers", "bare", "moto")
        self.ports = {name: free_port() for name in names}
        self.redis_url = f"redis://127.0.0.1:{self.ports['redis']}/0"
        started = {
            "redis": self._start_redis(),
            "service": self._start_service("service", 1),
            "bare": self._start_bare(),
            "moto": self._start_moto(),
        }
        if self.plan.workers:
            started["workers"] = self._start_service("workers", self.workers)
        for name, process in started.items():
            wait_for_port(self.ports[name], process, timeout_s=60)
        # The servers of one process, whose CPU time is read around each load;
        # the workers' supervisor does no work of its own.
        self.pids = {
            name: process.pid for name, process in started.items() if name != "workers"
        }
        return redis.Redis.from_url(self.redis_url)

    def _start_redis(self) -> subprocess.Popen:
        command = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.ports["redis"]), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no",
            "--dir", str(self.processes.directory),
        ]  # fmt: skip
        # Unpinned: Redis serves every system alike, and the scheduler gives it
        # whichever core has room (pinning it beside either side skews that side).
        return self.processes.start("redis", command)

    def _start_service(self, name: str, workers: int) -> subprocess.Popen:
        env = {
            "HPO_REDIS_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "HPO_TOKEN_SECRET": self.secret,
            "HPO_PORT": str(self.ports[name]),
            # One access line per request would measure the log, not the service.
            "HPO_LOG_LEVEL": "WARNING",
            "HPO_WORKERS": str(workers),
            "HPO_SHUTDOWN_GRACE_S": "0.1",
        }
        command = [sys.executable, "-m", "service"]
        return self.processes.start(name, pinned(command, self.server_cpus), env)

    def _start_bare(self) -> subprocess.Popen:
        command = [
            sys.executable, str(ROOT / "bench" / "bare.py"),
            "--port", str(self.ports["bare"]),
            "--redis-url", f"redis://127.0.0.1:{self.ports['redis']}/0",
        ]  # fmt: skip
        return self.processes.start("bare", pinned(command, self.server_cpus))

    def _start_moto(self) -> subprocess.Popen:
        command = [
            sys.executable, str(ROOT / "bench" / "moto_server.py"),
            "--port", str(self.ports["moto"]), "--jobs", str(self.plan.moto_jobs),
        ]  # fmt: skip
        return self.processes.start("moto", pinned(command, self.server_cpus))

    def seed_all(self, client: redis.Redis) -> None:
        """Seed every size, noting Redis memory per training job and the rate."""
        for size in self.plan.sizes:
            before = client.info("memory")["used_memory"]
            self.results.seed_lines[size] = seed(self.redis_url, size)
            after = client.info("memory")["used_memory"]
            self.results.memory_per_job[size] = (after - before) / size
            say(self.results.seed_lines[size])

    def prepare_bodies(self, client: redis.Redis) -> dict[tuple[str, int], bytes]:
        """Every query's body, and the bare stack's answers of the same size."""
        secret = self.secret.encode()
        bodies = {}
        for size in self.plan.sizes:
            cursor, following = deep_cursor(client, size)
            token = deep_token(secret, size, cursor)
            for query in report.QUERIES:
                body = query_body(query, size, token)
                answer = post(
                    f"{self.url('service')}/ListTrainingJobsForTuningJob", body
                )
                if query == "d":
                    first = orjson.loads(answer)["TrainingJobSummaries"][0]
                    if first["TrainingJobName"] != following:
                        raise RuntimeError(f"deep token: {first} != {following}")
                client.set(f"bench:bare:{query}-{size}", answer)
                bodies[(query, size)] = orjson.dumps(body)
        return bodies

    def measure(
        self, system: str, path: str, body: bytes, headers: dict
    ) -> tuple[loadgen.Result, float | None]:
        """One measurement of one system, with its server's CPU per request."""
        load = loadgen.Load(
            url=f"{self.url(system)}/{path}",
            body=body,
            headers=headers,
            connections=self.plan.connections,
            duration_s=self.plan.duration_s,
        )
        before_s = cpu_seconds(self.pids.get(system))
        result = loadgen.measure(load, self.generator_cpu, self.plan.generator)
        after_s = cpu_seconds(self.pids.get(system))
        if before_s is None or after_s is None or not result.requests:
            return result, None
        return result, (after_s - before_s) * 1e6 / result.requests

    def record(
        self, key: tuple[str, str, int], path: str, body: bytes, headers: dict
    ) -> None:
        """Measure `key`'s system and keep the result under `key`."""
        result, cpu_us = self.measure(key[0], path, body, headers)
        self.results.runs[key].append(result)
        if cpu_us is not None:
            self.results.cpu_us[key].append(cpu_us)

    def warm_up(self, bodies: dict[tuple[str, int], bytes]) -> None:
        """A short load on every server, unrecorded: first requests load code."""
        size = self.plan.sizes[-1]
        body = bodies[("b", size)]
        operation = "ListTrainingJobsForTuningJob"
        systems = [("service", operation), ("bare", f"b-{size}")]
        if self.plan.workers:
            systems.append(("workers", operation))
        for system, path in systems:
            self.measure(system, path, body, {})

    def measure_rounds(self, bodies: dict[tuple[str, int], bytes]) -> None:
        """Every query at every size, rounds over; references right after."""
        operation = "ListTrainingJobsForTuningJob"
        for round_number in range(1, self.plan.rounds + 1):
            say(f"round {round_number} of {self.plan.rounds}")
            for query in report.QUERIES:
                for size in self.plan.sizes:
                    body = bodies[(query, size)]
                    self.record(("service", query, size), operation, body, {})
                    if query in report.BARE_QUERIES:
                        self.record(("bare", query, size), f"{query}-{size}", body, {})
                    if query == report.MOTO_QUERY and size == self.plan.moto_jobs:
                        moto_body = orjson.dumps(MOTO_BODY)
                        self.record(("moto", query, size), "", moto_body, MOTO_HEADERS)

    def measure_walks(self) -> None:
        """Walk every page of the walk-size tuning job, rounds over."""
        for _ in range(self.plan.rounds):
            elapsed_s, pages, jobs = asyncio.run(
                walk(self.url("service"), self.plan.walk_jobs)
            )
            if jobs != self.plan.walk_jobs:
                raise RuntimeError(f"the walk saw {jobs} of {self.plan.walk_jobs}")
            self.results.walk_s.append(elapsed_s)
            self.results.walk_pages = pages

    def measure_workers(self, bodies: dict[tuple[str, int], bytes]) -> None:
        """Query (b) with HPO_WORKERS set to the cores, alternating with one."""
        size = self.plan.sizes[-1]
        body = bodies[("b", size)]
        operation = "ListTrainingJobsForTuningJob"
        for _ in range(self.plan.rounds):
            for system in ("service", "workers"):
                self.record((system, "workers-b", size), operation, body, {})


def run(plan: Plan, output: Path, command: str) -> Results:
    """Run the whole benchmark and write its report to `output`."""
    if plan.moto_jobs not in plan.sizes or plan.walk_jobs not in plan.sizes:
        raise ValueError("moto_jobs and walk_jobs must be among the sizes")
    directory = Path(tempfile.mkdtemp(prefix="hpo-bench-"))
    bench = Bench(plan, directory)
    try:
        say("starting redis-server, the service, the bare stack and moto")
        client = bench.start_all()
        bench.seed_all(client)
        bodies = bench.prepare_bodies(client)
        say("warming up")
        bench.warm_up(bodies)
        bench.measure_rounds(bodies)
        say("walking")
        bench.measure_walks()
        if plan.workers:
            say(f"{bench.workers} workers against one")
            bench.measure_workers(bodies)
        versions = collect_versions(client, plan.generator)
        client.close()
    finally:
        say("stopping the servers")
        bench.processes.stop_all()
        shutil.rmtree(directory, ignore_errors=True)

    text = report.markdown(plan, bench.results, command, versions, bench)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(report.targets_text(plan, bench.results), flush=True)
    print(f"wrote {output}", flush=True)
    return bench.results


def collect_versions(client: redis.Redis, generator: str) -> dict[str, str]:
    """Versions of everything measured, and of the machine."""
    versions = {
        "python": platform.python_version(),
        "redis-server": client.info("server")["redis_version"],
        "load generator": _generator_version(generator),
    }
    for package in ("aiohttp", "redis", "hiredis", "orjson", "marshmallow", "moto"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def _generator_version(generator: str) -> str:
    if generator != "wrk":
        return f"asyncio client (aiohttp {metadata.version('aiohttp')})"
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (done.stdout + done.stderr).split("[")[0].strip() or "wrk"


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, run, and exit 0 once the report is written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--rounds", type=int, help="rounds of every measurement")
    parser.add_argument("--duration-s", type=float, help="seconds per measurement")
    parser.add_argument("--connections", type=int, help="concurrent connections")
    parser.add_argument("--generator", choices=("wrk", "asyncio"))
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help="training jobs per tuning job, comma-separated; the moto and walk "
        "comparisons use the smallest unless --moto-jobs and --walk-jobs say",
    )
    parser.add_argument("--moto-jobs", type=int, help="jobs moto holds")
    parser.add_argument("--walk-jobs", type=int, help="tuning job walked")
    parser.add_argument(
        "--no-workers", action="store_true", help="skip the HPO_WORKERS comparison"
    )
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else Plan()
    overrides = {
        name: value
        for name, value in (
            ("rounds", args.rounds),
            ("duration_s", args.duration_s),
            ("connections", args.connections),
            ("generator", args.generator),
            ("sizes", args.sizes),
            ("moto_jobs", args.moto_jobs or (args.sizes and args.sizes[0])),
            ("walk_jobs", args.walk_jobs or (args.sizes and args.sizes[0])),
            ("workers", False if args.no_workers else None),
        )
        if value is not None
    }
    plan = replace(plan, **overrides)
    words = sys.argv[1:] if argv is None else argv
    command = " ".join(["python bench/run.py", *words])
    run(plan, args.output, command)
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(sorted({int(part) for part in text.split(",")}))
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive whole numbers")
    return sizes


if __name__ == "__main__":
    raise SystemExit(main())
