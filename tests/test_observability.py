"""Probes, Prometheus metrics and JSON log lines, on an in-process server."""

from __future__ import annotations

import dataclasses
import io
import logging
from typing import Any

import fakeredis
import orjson
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from service import observability
from service.app import create_app

from .conftest import ACCOUNT, Api, make_settings
from .redis_servers import free_port

CREATE = {
    "AwsAccountId": ACCOUNT,
    "TuningJobName": "tj",
    "ObjectiveMetricName": "accuracy",
    "ObjectiveType": "Maximize",
}


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of the default registry, 0 if absent."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def store() -> fakeredis.FakeAsyncRedis:
    """A fresh embedded store for one test."""
    return fakeredis.FakeAsyncRedis()


@pytest.fixture
async def served(aiohttp_client: Any, aiohttp_server: Any, store: Any):
    """An app behind a real server with the service's own access logger."""

    async def build(redis: Any = None, **overrides: Any) -> Api:
        """Serve an app over `redis` (the test's store by default)."""
        settings = dataclasses.replace(make_settings(), **overrides)
        app = create_app(settings, redis=redis or store)
        server = await aiohttp_server(
            app,
            access_log_class=observability.AccessLog,
            access_log=observability.access_log,
        )
        return Api(await aiohttp_client(server))

    return build


@pytest.fixture
def log_lines():
    """Every JSON line the service logs while the test runs, parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict[str, Any]]:
        """The lines logged so far, parsed."""
        return [orjson.loads(line) for line in stream.getvalue().splitlines()]

    lines.text = stream.getvalue  # type: ignore[attr-defined]
    yield lines
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_healthz_answers_without_redis_or_auth(served):
    dead = Redis(port=free_port(), socket_connect_timeout=0.2)
    api = await served(redis=dead)

    response = await api.client.get("/healthz")

    assert response.status == 200
    assert (await response.json())["status"] == "alive"
    await dead.aclose()


async def test_readyz_is_ready_when_redis_answers(served):
    api = await served()
    response = await api.client.get("/readyz")
    assert response.status == 200


async def test_readyz_is_503_when_redis_does_not_answer(served):
    dead = Redis(port=free_port(), socket_connect_timeout=0.2)
    api = await served(redis=dead, redis_timeout_s=0.5)

    response = await api.client.get("/readyz")

    assert response.status == 503
    await dead.aclose()


async def test_readyz_is_503_while_draining(served):
    api = await served()
    api.client.server.app[observability.HEALTH].draining = True

    response = await api.client.get("/readyz")

    assert response.status == 503
    assert (await response.json())["status"] == "draining"


async def test_operator_paths_answer_get_only(served):
    api = await served()
    for path in observability.OPERATOR_PATHS:
        response = await api.client.post(path, data=b"{}")
        assert response.status == 405, path


async def test_requests_are_counted_by_operation_status_and_code(served):
    api = await served()
    ok = {"operation": "CreateTuningJob", "status": "200", "code": "none"}
    missing = {
        "operation": "DeleteTuningJob",
        "status": "404",
        "code": "ResourceNotFound",
    }
    before_ok = sample("hpo_requests_total", **ok)
    before_missing = sample("hpo_requests_total", **missing)
    before_seconds = sample("hpo_request_duration_seconds_count", **ok)

    await api.ok("CreateTuningJob", **CREATE)
    await api.ok("CreateTuningJob", **CREATE)
    await api.error(
        "DeleteTuningJob", "ResourceNotFound", AwsAccountId=ACCOUNT, TuningJobName="x"
    )

    assert sample("hpo_requests_total", **ok) == before_ok + 2
    assert sample("hpo_requests_total", **missing) == before_missing + 1
    assert sample("hpo_request_duration_seconds_count", **ok) == before_seconds + 2


async def test_unknown_paths_share_one_label(served):
    api = await served()
    labels = {"operation": "unmatched", "status": "404"}
    labels["code"] = "UnknownOperationException"
    before = sample("hpo_requests_total", **labels)

    for path in ("/a", "/b", "/c"):
        await api.client.post(path, data=b"{}")

    assert sample("hpo_requests_total", **labels) == before + 3


async def test_redis_commands_are_timed(served):
    api = await served()
    before = sample("hpo_redis_command_duration_seconds_count", command="EVALSHA")

    await api.ok("CreateTuningJob", **CREATE)

    assert sample("hpo_redis_command_duration_seconds_count", command="EVALSHA") > (
        before
    )


async def test_time_commands_wraps_a_client_once(store):
    wrapped = observability.time_commands(store)
    again = observability.time_commands(wrapped)
    before = sample("hpo_redis_command_duration_seconds_count", command="PING")

    await again.ping()

    assert sample("hpo_redis_command_duration_seconds_count", command="PING") == (
        before + 1
    )


async def test_metrics_page_has_in_flight_process_and_request_metrics(served):
    api = await served()
    await api.ok("CreateTuningJob", **CREATE)

    response = await api.client.get("/metrics")
    text = await response.text()

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    # The metrics request itself is the one in flight while the page is built.
    assert "hpo_requests_in_flight 1.0" in text
    assert "process_cpu_seconds_total" in text
    assert "process_resident_memory_bytes" in text
    assert 'hpo_requests_total{code="none",operation="CreateTuningJob"' in text
    assert sample("hpo_requests_in_flight") == 0


def test_throttled_and_fault_counters_count():
    before_throttled = sample("hpo_throttled_requests_total", operation="PutX")
    before_fault = sample("hpo_injected_faults_total", operation="PutX", kind="latency")

    observability.count_throttled("PutX")
    observability.count_fault("PutX", "latency")
    observability.count_fault("PutX", "latency")

    assert sample("hpo_throttled_requests_total", operation="PutX") == (
        before_throttled + 1
    )
    assert sample("hpo_injected_faults_total", operation="PutX", kind="latency") == (
        before_fault + 2
    )


async def test_access_line_has_every_field(served, log_lines):
    api = await served()

    _, _, response = await api.call("CreateTuningJob", **CREATE)

    access = [line for line in log_lines() if line["logger"] == "service.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == response.headers["x-amzn-RequestId"]
    assert line["account"] == ACCOUNT
    assert line["operation"] == "CreateTuningJob"
    assert (line["status"], line["code"]) == (200, "")
    assert line["duration_ms"] >= 0
    assert line["bytes_out"] > 0
    assert line["level"] == "info"
    assert line["time"].endswith("+00:00")


async def test_access_line_carries_the_error_code(served, log_lines):
    api = await served()

    await api.error(
        "DeleteTuningJob", "ResourceNotFound", AwsAccountId=ACCOUNT, TuningJobName="x"
    )

    access = [line for line in log_lines() if line["logger"] == "service.access"]
    assert [(line["status"], line["code"]) for line in access] == [
        (404, "ResourceNotFound")
    ]


async def test_probe_lines_are_debug_only(served, log_lines):
    api = await served()

    for path in observability.OPERATOR_PATHS:
        await api.client.get(path)

    assert [line for line in log_lines() if line["logger"] == "service.access"] == []


async def test_logs_hold_no_token_secret_or_body(served, log_lines):
    secret = "s3cr3t-signing-key-zz"
    api = await served(token_secret=secret.encode())
    await api.ok("CreateTuningJob", **CREATE)
    distinctive = "hyper-value-4f1e9c"
    jobs = [
        {
            "TrainingJobName": f"j{i}",
            "TrainingJobStatus": "Completed",
            "HyperParameters": {"lr": distinctive},
        }
        for i in range(3)
    ]
    await api.ok(
        "PutTrainingJobs", AwsAccountId=ACCOUNT, TuningJobName="tj", TrainingJobs=jobs
    )
    page = await api.ok(
        "ListTrainingJobsForTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        MaxResults=1,
    )
    token = page["NextToken"]
    await api.ok(
        "ListTrainingJobsForTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        MaxResults=1,
        NextToken=token,
    )
    await api.error(
        "ListTrainingJobsForTuningJob",
        "ValidationError",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        NextToken=token[:-2] + distinctive,
    )

    text = log_lines.text()
    assert text.count('"logger":"service.access"') == 5
    for leaked in (secret, token, distinctive, "HyperParameters"):
        assert leaked not in text


async def test_unexpected_failure_is_logged_with_request_id(served, store, log_lines):
    async def broken(*args: Any, **options: Any) -> Any:
        """Fail the way an unforeseen bug would."""
        raise RuntimeError("deliberately broken store")

    store.execute_command = broken
    api = await served()

    _, payload, response = await api.call("CreateTuningJob", **CREATE)

    request_id = response.headers["x-amzn-RequestId"]
    errors = [line for line in log_lines() if line["level"] == "error"]
    assert payload["__type"] == "InternalFailure"
    assert [line["request_id"] for line in errors] == [request_id]
    assert "deliberately broken store" in errors[0]["traceback"]


def test_extras_outside_the_known_fields_are_dropped():
    record = logging.LogRecord("service.x", logging.INFO, "", 0, "m", (), None)
    record.body = "a request body"
    record.request_id = "rid"

    line = orjson.loads(observability.JsonFormatter().format(record))

    assert line["request_id"] == "rid"
    assert "body" not in line
    assert "a request body" not in str(line)


@pytest.mark.parametrize(
    "level, shown",
    [("DEBUG", {"debug", "info"}), ("INFO", {"info"}), ("WARNING", set())],
)
def test_configure_logging_sets_the_level_and_json(level, shown, capsys):
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        observability.configure_logging(level)
        logging.getLogger("service.test").debug("d")
        logging.getLogger("service.test").info("i")
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])

    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["level"] for line in lines} == shown
