"""What operators see: probes, Prometheus metrics and JSON log lines."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import prometheus_client
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .keys import ACCOUNT, REQUEST_ID, SETTINGS, STORAGE

log = logging.getLogger("service.observability")
access_log = logging.getLogger("service.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths that answer operators and probes rather than API clients.
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
OPERATOR_PATHS = frozenset((HEALTH_PATH, READY_PATH, METRICS_PATH))

_UNMATCHED = "unmatched"
_NO_ERROR = "none"

# Latency buckets in seconds: a page read is typically well under 10 ms.
_REQUEST_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_REDIS_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0,
)  # fmt: skip

REQUESTS = prometheus_client.Counter(
    "hpo_requests",
    "Requests answered, by operation, HTTP status and error code",
    ("operation", "status", "code"),
)
REQUEST_SECONDS = prometheus_client.Histogram(
    "hpo_request_duration_seconds",
    "Time to answer a request, by operation, HTTP status and error code",
    ("operation", "status", "code"),
    buckets=_REQUEST_BUCKETS_S,
)
IN_FLIGHT = prometheus_client.Gauge(
    "hpo_requests_in_flight",
    "Requests being answered right now",
    multiprocess_mode="livesum",
)
REDIS_SECONDS = prometheus_client.Histogram(
    "hpo_redis_command_duration_seconds",
    "Round trip of one Redis command, by command name",
    ("command",),
    buckets=_REDIS_BUCKETS_S,
)
THROTTLED = prometheus_client.Counter(
    "hpo_throttled_requests",
    "Requests refused as over their account's budget, by operation",
    ("operation",),
)
FAULTS = prometheus_client.Counter(
    "hpo_injected_faults",
    "Faults injected on purpose, by operation and kind of fault",
    ("operation", "kind"),
)


def count_throttled(operation: str) -> None:
    """Count one request refused by throttling (never label by account)."""
    THROTTLED.labels(operation).inc()


def count_fault(operation: str, kind: str) -> None:
    """Count one injected fault; `kind` comes from a small fixed set."""
    FAULTS.labels(operation, kind).inc()


@dataclass
class Health:
    """Whether the server still takes traffic; set false when it drains."""

    draining: bool = False


HEALTH: web.AppKey[Health] = web.AppKey("health", Health)


def install(app: web.Application) -> None:
    """Add the probe and metrics routes and the draining flag to `app`."""
    app[HEALTH] = Health()
    app.router.add_get(HEALTH_PATH, healthz, allow_head=False)
    app.router.add_get(READY_PATH, readyz, allow_head=False)
    app.router.add_get(METRICS_PATH, metrics, allow_head=False)


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when not draining and Redis answers a PING in time."""
    if request.app[HEALTH].draining:
        return web.json_response({"status": "draining"}, status=503)
    timeout_s = request.app[SETTINGS].redis_timeout_s
    try:
        await asyncio.wait_for(request.app[STORAGE].redis.ping(), timeout_s)
    except Exception as problem:  # any failure to answer means not ready
        log.warning("not ready: redis did not answer: %s", type(problem).__name__)
        return web.json_response({"status": "redis unavailable"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Every metric in the Prometheus text format, summed over workers."""
    body = prometheus_client.generate_latest(_registry())
    return web.Response(
        body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
    )


def _registry() -> Any:
    """One worker's registry, or a merge of every worker's files."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return prometheus_client.REGISTRY
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    registry.register(WorkerProcesses(directory))
    return registry


class WorkerProcesses(Collector):
    """Process metrics summed over the live workers that share a metrics dir."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Any]:
        """CPU seconds, resident memory and open files of all live workers."""
        totals = {"cpu": 0.0, "rss": 0.0, "fds": 0.0}
        pids = _worker_pids(self.directory)
        for pid in pids:
            for sample in _process_samples(pid):
                name = sample.name
                if name == "process_cpu_seconds_total":
                    totals["cpu"] += sample.value
                elif name == "process_resident_memory_bytes":
                    totals["rss"] += sample.value
                elif name == "process_open_fds":
                    totals["fds"] += sample.value
        yield _gauge("hpo_worker_processes", "Live worker processes", len(pids))
        yield CounterMetricFamily(
            "process_cpu_seconds", "CPU time of all workers", value=totals["cpu"]
        )
        yield _gauge(
            "process_resident_memory_bytes", "Memory of all workers", totals["rss"]
        )
        yield _gauge("process_open_fds", "Open files of all workers", totals["fds"])


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _worker_pids(directory: str) -> list[int]:
    """Pids that wrote metric files and are still running."""
    pids = set()
    for name in os.listdir(directory):
        stem = name.rsplit(".", 1)[0]
        tail = stem.rsplit("_", 1)[-1]
        if tail.isdigit() and os.path.exists(f"/proc/{tail}"):
            pids.add(int(tail))
    return sorted(pids)


def _process_samples(pid: int) -> list[Any]:
    collector = prometheus_client.ProcessCollector(pid=lambda: pid, registry=None)
    return [sample for family in collector.collect() for sample in family.samples]


def operation_of(request: web.Request) -> str:
    """The route's name for labels: a bounded set, never the raw path."""
    match = request.match_info
    if match.http_exception is not None:
        return _UNMATCHED
    return match.route.resource.canonical.lstrip("/") if match.route.resource else ""


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request and time it, by operation, status and error code."""
    operation = operation_of(request)
    started = time.perf_counter()
    IN_FLIGHT.inc()
    try:
        response = await handler(request)
    finally:
        IN_FLIGHT.dec()
    code = response.headers.get("x-amzn-ErrorType", _NO_ERROR)
    labels = (operation, str(response.status), code)
    REQUESTS.labels(*labels).inc()
    REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)
    return response


def time_commands(client: Any) -> Any:
    """Time every command `client` sends; a client is wrapped only once."""
    if getattr(client, "_hpo_timed", False):
        return client
    send = client.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        """Send the command and record its round trip under its name."""
        started = time.perf_counter()
        try:
            return await send(*args, **options)
        finally:
            name = args[0] if args and isinstance(args[0], str) else "other"
            elapsed_s = time.perf_counter() - started
            REDIS_SECONDS.labels(name.split(" ", 1)[0].upper()).observe(elapsed_s)

    client.execute_command = execute_command
    client._hpo_timed = True
    return client


class AccessLog(AbstractAccessLogger):
    """One JSON line per request: who asked what, the outcome and its cost."""

    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        """Write the access line; probe and metrics lines only at DEBUG."""
        level = logging.DEBUG if request.path in OPERATOR_PATHS else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        fields = {
            "request_id": request.get(REQUEST_ID, ""),
            "account": request.get(ACCOUNT, ""),
            "operation": _operation_or_path(request),
            "status": response.status,
            "code": response.headers.get("x-amzn-ErrorType", ""),
            "duration_ms": round(time * 1000, 3),
            "bytes_out": response.body_length,
        }
        self.logger.log(level, "access", extra=fields)

    @property
    def enabled(self) -> bool:
        """Whether a line could be written at all, so aiohttp may skip the call."""
        # Operator paths log at DEBUG, which is enabled only when INFO is too.
        return self.logger.isEnabledFor(logging.INFO)


def _operation_or_path(request: web.BaseRequest) -> str:
    if isinstance(request, web.Request):
        return operation_of(request)
    return _UNMATCHED


# Extras copied into a JSON line; anything else passed as `extra` is dropped,
# so a careless caller cannot leak a body or token into the logs.
_FIELDS = (
    "request_id",
    "account",
    "operation",
    "status",
    "code",
    "injected",
    "duration_ms",
    "bytes_out",
    "address",
    "workers",
    "reason",
    "retry_after_ms",
    "paths",
)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record's time, level, logger, message and known fields."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in _FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: str) -> None:
    """Send every log record to standard output as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
