"""The load test's page walks, against a live server, and locust running them."""

from __future__ import annotations

import csv
import importlib.util
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from service import cli, seeding

from .redis_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
LOADTEST = ROOT / "deploy" / "loadtest"
ACCOUNT = "123456789012"
JOBS = 230


def load_paging():
    """deploy/loadtest/paging.py, imported the way locust imports it: by path."""
    spec = importlib.util.spec_from_file_location("paging", LOADTEST / "paging.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["paging"] = module
    spec.loader.exec_module(module)
    return module


paging = load_paging()


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[str]:
    """A live `python -m service` over the real Redis, seeded with JOBS jobs."""
    status = cli.main(
        ["seed", "--redis-url", redis_url, "--tuning-job", "load-test",
         "--jobs", str(JOBS), "--quiet", "--seed", "5"]
    )  # fmt: skip
    assert status == 0
    port = free_port()
    env = {
        **os.environ,
        "HPO_REDIS_URL": redis_url,
        "HPO_PORT": str(port),
        "HPO_TOKEN_SECRET": "load-test",
        "HPO_LOG_LEVEL": "WARNING",
        "HPO_SHUTDOWN_GRACE_S": "0.1",
    }
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env)
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the server did not listen")


def poster(base_url: str):
    """A paging.Post over a requests session."""
    session = requests.Session()

    def post(operation: str, body: dict):
        response = session.post(f"{base_url}/{operation}", json=body, timeout=10)
        return paging.answer_of(response.status_code, response.headers, response.text)

    return post


def expected_names(query: dict) -> list[str]:
    """The names a walk must return, from the seeded jobs themselves."""
    jobs = list(
        seeding.synthetic_jobs(
            JOBS,
            status_mix=seeding.parse_status_mix(seeding.DEFAULT_STATUS_MIX),
            distribution=seeding.parse_distribution(seeding.DEFAULT_DISTRIBUTION),
            hyperparameters=2,
            seed=5,
        )
    )
    status = query.get("TrainingJobStatusEquals")
    if status is not None:
        jobs = [job for job in jobs if job.status == paging.STATUSES.index(status)]
    descending = query.get("SortOrder") == "Descending"
    if "SortBy" in query:
        jobs = [job for job in jobs if job.value is not None]
        jobs.sort(key=lambda job: (job.value, job.name), reverse=descending)
    else:
        jobs.sort(key=lambda job: job.name, reverse=descending)
    return [job.name for job in jobs]


@pytest.mark.real_redis
@pytest.mark.parametrize("seed", range(8))
def test_walk_returns_every_job_once_in_order(server, seed):
    query = paging.random_query(random.Random(seed))

    walked = paging.walk(poster(server), ACCOUNT, "load-test", query)

    assert walked.error_code is None
    assert walked.names == expected_names(query)
    size = query["MaxResults"]
    assert walked.pages == max(1, -(-len(walked.names) // size))


@pytest.mark.real_redis
def test_walk_stops_at_max_pages(server):
    walked = paging.walk(
        poster(server), ACCOUNT, "load-test", {"MaxResults": 10}, max_pages=3
    )
    assert walked.pages == 3
    assert walked.names == expected_names({})[:30]


@pytest.mark.real_redis
@pytest.mark.parametrize(
    ("tuning_job", "query", "code"),
    [
        ("missing", {}, "ResourceNotFound"),
        ("load-test", {"MaxResults": 1000}, "ValidationError"),
        ("load-test", {"NextToken": "forged"}, "ValidationError"),
    ],
)
def test_walk_names_errors_by_their_code(server, tuning_job, query, code):
    walked = paging.walk(poster(server), ACCOUNT, tuning_job, query)
    assert (walked.pages, walked.names, walked.error_code) == (1, [], code)


def test_walk_refuses_a_token_it_already_followed():
    def post(operation: str, body: dict):
        page = {"TrainingJobSummaries": [{"TrainingJobName": "a"}], "NextToken": "t"}
        return paging.Answer(200, None, page)

    walked = paging.walk(post, ACCOUNT, "tj", {})
    assert (walked.pages, walked.error_code) == (2, "RepeatedNextToken")


def test_answer_without_error_type_is_named_by_status():
    answer = paging.answer_of(502, {}, "<html>bad gateway</html>")
    assert (answer.error_code, answer.body) == ("HTTP 502", {})


@pytest.mark.real_redis
def test_locust_runs_the_walks_and_counts_errors_by_code(server, tmp_path):
    env = {
        **os.environ,
        "HPO_LOADTEST_TUNING_JOBS": "load-test,missing",
        "HPO_LOADTEST_MAX_PAGES": "3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOADTEST / "locustfile.py"),
         "--headless", "--users", "2", "--spawn-rate", "2", "--run-time", "3s",
         "--host", server, "--csv", str(tmp_path / "run"), "--only-summary"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    with open(tmp_path / "run_stats.csv") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    with open(tmp_path / "run_failures.csv") as failures:
        errors = {row["Error"] for row in csv.DictReader(failures)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > int(total["Failure Count"]) > 0, done.stderr
    # locust words a failure set with response.failure(code) this way.
    assert errors == {"CatchResponseError('ResourceNotFound')"}
    assert all(name.startswith("ListTrainingJobsForTuningJob: ") for name in rows
               if name != "Aggregated")  # fmt: skip
