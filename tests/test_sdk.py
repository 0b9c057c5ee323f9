"""boto3 and the AWS CLI, given only the shipped model, against a live server.

The server listens on a free loopback port inside the test's event loop;
boto3's blocking calls run in a worker thread, and the CLI in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.config import Config

from service import cli, errors, guards, model
from service.app import create_app

from .conftest import ACCOUNT, make_settings
from .redis_servers import RedisServer

STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
METRIC = "FinalObjectiveMetricValue"
REGION = "us-east-1"
# Each call gets one attempt unless a test asks for retries.
NO_RETRIES = {"mode": "standard", "total_max_attempts": 1}
CLI_TIMEOUT_S = 60
ROOT = Path(__file__).resolve().parent.parent
only_real_redis = pytest.mark.parametrize("redis", ["real"], indirect=True)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The shipped model on AWS_DATA_PATH, dummy keys, nothing read from ~/.aws."""
    monkeypatch.setenv("AWS_DATA_PATH", str(model.data_path()))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port; yield its endpoint URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def endpoint_for(aws_env: None) -> Any:
    """Serve an app over the test's store; settings overrides allowed."""

    @asynccontextmanager
    async def start(app: web.Application | None = None, **overrides: Any):
        async with serving(app or create_app(make_settings(**overrides))) as url:
            yield url

    return start


@pytest.fixture
async def endpoint(endpoint_for: Any, app_factory: Any) -> AsyncIterator[str]:
    """A live server over the test's store, with default settings."""
    async with endpoint_for(app_factory()) as url:
        yield url


def sdk(endpoint: str, retries: dict | None = None) -> Any:
    """A boto3 client of the shipped model, from a fresh session."""
    config = Config(retries=retries or NO_RETRIES, connect_timeout=5, read_timeout=10)
    return boto3.session.Session().client(
        "sagemakerhpo", endpoint_url=endpoint, region_name=REGION, config=config
    )


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking SDK call off the loop that serves it."""
    return await asyncio.to_thread(call, *args, **kwargs)


def training_jobs(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Jobs in every status; a third lack a value; values repeat, to test ties."""
    rng = random.Random(seed)
    jobs = []
    for number in range(count):
        job = {
            "TrainingJobName": f"job-{rng.randrange(10**6):06d}-{number}",
            "TrainingJobStatus": rng.choice(STATUSES),
            "HyperParameters": {"lr": str(rng.random())},
            "RetriedAttempt": rng.randrange(3),
        }
        if number % 3:
            job["FinalObjectiveMetricValue"] = rng.choice([0.5, 0.25, rng.random()])
        jobs.append(job)
    return jobs


def expected_names(jobs: list[dict], sort_by: str | None, order: str, status: Any):
    """The order the README promises, computed from the jobs themselves."""
    kept = [j for j in jobs if status is None or j["TrainingJobStatus"] == status]
    descending = order == "Descending"
    if sort_by is None:
        ranked = sorted(kept, key=lambda j: j["TrainingJobName"].encode())
    else:
        kept = [j for j in kept if "FinalObjectiveMetricValue" in j]
        ranked = sorted(
            kept,
            key=lambda j: (j["FinalObjectiveMetricValue"], j["TrainingJobName"]),
        )
    if descending:
        ranked.reverse()
    return [j["TrainingJobName"] for j in ranked]


def create_and_fill(client: Any, jobs: list[dict], tuning_job: str = "tj") -> None:
    """Create a Maximize tuning job through the SDK and put `jobs` into it."""
    client.create_tuning_job(
        AwsAccountId=ACCOUNT,
        TuningJobName=tuning_job,
        ObjectiveMetricName="validation:accuracy",
        ObjectiveType="Maximize",
    )
    answer = client.put_training_jobs(
        AwsAccountId=ACCOUNT, TuningJobName=tuning_job, TrainingJobs=jobs
    )
    assert answer["TrainingJobCount"] == len(jobs)


def walk(client: Any, page_size: int, **query: Any) -> list[list[str]]:
    """Every page the paginator fetches, as lists of names."""
    paginator = client.get_paginator("list_training_jobs_for_tuning_job")
    pages = paginator.paginate(
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        PaginationConfig={"PageSize": page_size},
        **query,
    )
    return [
        [s["TrainingJobName"] for s in page["TrainingJobSummaries"]] for page in pages
    ]


def test_model_path_command_prints_the_folder_for_aws_data_path(capsys):
    assert cli.main(["model-path"]) == 0

    printed = Path(capsys.readouterr().out.strip())
    assert printed == model.data_path()
    for name in ("service-2.json", "paginators-1.json"):
        assert (printed / model.SERVICE_NAME / model.API_VERSION / name).is_file()


def test_the_built_wheel_ships_the_model_files(tmp_path):
    # What `pip install .` installs: the wheel that pip builds from setup.cfg.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())

    folder = f"service/data/{model.SERVICE_NAME}/{model.API_VERSION}"
    assert {f"{folder}/service-2.json", f"{folder}/paginators-1.json"} <= shipped


async def test_paginator_walks_every_order_and_filter(endpoint):
    client = sdk(endpoint)
    jobs = training_jobs(23)
    await in_thread(create_and_fill, client, jobs)

    def walk_all() -> dict[tuple, list[list[str]]]:
        walks = {}
        for sort_by in (None, METRIC):
            for order in ("Ascending", "Descending"):
                for status in (None, *STATUSES):
                    query = {"SortOrder": order}
                    if sort_by:
                        query["SortBy"] = sort_by
                    if status:
                        query["TrainingJobStatusEquals"] = status
                    walks[sort_by, order, status] = walk(client, 4, **query)
        return walks

    walks = await in_thread(walk_all)

    assert len(walks) == 2 * 2 * (1 + len(STATUSES))
    for (sort_by, order, status), pages in walks.items():
        wanted = expected_names(jobs, sort_by, order, status)
        assert [name for page in pages for name in page] == wanted
        assert len(pages) == max(1, math.ceil(len(wanted) / 4))
        assert all(len(page) <= 4 for page in pages)


async def test_paginator_resumes_from_starting_token_with_max_items(endpoint):
    client = sdk(endpoint)
    jobs = training_jobs(17, seed=5)
    await in_thread(create_and_fill, client, jobs)
    query = {"SortBy": METRIC, "SortOrder": "Descending"}
    paginator = client.get_paginator("list_training_jobs_for_tuning_job")

    def resume_until_done() -> tuple[list[str], int]:
        seen, token, runs = [], None, 0
        while runs < 20:
            config = {"MaxItems": 5, "PageSize": 3}
            if token:
                config["StartingToken"] = token
            result = paginator.paginate(
                AwsAccountId=ACCOUNT,
                TuningJobName="tj",
                PaginationConfig=config,
                **query,
            ).build_full_result()
            runs += 1
            seen += [s["TrainingJobName"] for s in result["TrainingJobSummaries"]]
            token = result.get("NextToken")
            if token is None:
                return seen, runs
            assert len(result["TrainingJobSummaries"]) == 5
        raise AssertionError("the walk did not end")

    seen, runs = await in_thread(resume_until_done)

    wanted = expected_names(jobs, METRIC, "Descending", None)
    assert seen == wanted
    assert runs == math.ceil(len(wanted) / 5)


async def test_sdk_reads_the_whole_summary_shape(endpoint):
    client = sdk(endpoint)
    job = {
        "TrainingJobName": "one",
        "TrainingJobStatus": "Completed",
        "HyperParameters": {"depth": "6"},
        "RetriedAttempt": 2,
        "FinalObjectiveMetricValue": 0.75,
    }
    await in_thread(create_and_fill, client, [job])

    page = await in_thread(
        client.list_training_jobs_for_tuning_job,
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
    )

    assert page["TrainingJobSummaries"] == [
        {
            "TrainingJobName": "one",
            "TrainingJobStatus": "Completed",
            "HyperParameters": {"depth": "6"},
            "RetriedAttempt": 2,
            "FinalTuningJobObjectiveMetric": {
                "MetricName": "validation:accuracy",
                "Type": "Maximize",
                "Value": 0.75,
            },
        }
    ]
    assert "NextToken" not in page
    assert uuid.UUID(page["ResponseMetadata"]["RequestId"])


def assert_service_error(caught: Any, kind: type[errors.ServiceError]) -> str:
    """The SDK saw the code, the status and a request id; return the message."""
    response = caught.value.response
    assert response["Error"]["Code"] == kind.code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == kind.status
    assert uuid.UUID(response["ResponseMetadata"]["RequestId"])
    return response["Error"]["Message"]


@only_real_redis
async def test_client_errors_surface_as_modeled_exceptions(endpoint):
    client = sdk(endpoint)
    await in_thread(create_and_fill, client, training_jobs(2))

    with pytest.raises(client.exceptions.ValidationError) as caught:
        # Patterns are not checked by the SDK: the server must refuse it.
        await in_thread(
            client.list_training_jobs_for_tuning_job,
            AwsAccountId=ACCOUNT,
            TuningJobName="not_a_valid_name",
            MaxResults=101,
        )
    message = assert_service_error(caught, errors.ValidationError)
    assert message.startswith("2 validation errors detected: ")
    assert "at 'tuningJobName'" in message and "at 'maxResults'" in message

    with pytest.raises(client.exceptions.ResourceNotFound) as caught:
        await in_thread(
            client.delete_tuning_job, AwsAccountId=ACCOUNT, TuningJobName="missing"
        )
    message = assert_service_error(caught, errors.ResourceNotFound)
    assert message == "Tuning job 'missing' does not exist"

    with pytest.raises(client.exceptions.ResourceInUse) as caught:
        await in_thread(
            client.create_tuning_job,
            AwsAccountId=ACCOUNT,
            TuningJobName="tj",
            ObjectiveMetricName="loss",
            ObjectiveType="Minimize",
        )
    message = assert_service_error(caught, errors.ResourceInUse)
    assert message == "Tuning job 'tj' already exists with another objective"

    with pytest.raises(client.exceptions.AccessForbidden) as caught:
        # This deployment does not enable fault injection.
        await in_thread(client.get_fault_injection, AwsAccountId=ACCOUNT)
    message = assert_service_error(caught, errors.AccessForbidden)
    assert message == "Fault injection is not enabled on this deployment"


@only_real_redis
async def test_oversized_batch_surfaces_as_validation_error_413(
    endpoint_for, app_factory
):
    async with endpoint_for(app_factory(max_body_bytes=70_000)) as endpoint:
        client = sdk(endpoint)
        await in_thread(create_and_fill, client, training_jobs(1))
        batch = [
            {"TrainingJobName": f"big-{number}", "TrainingJobStatus": "Completed",
             "HyperParameters": {"blob": "x" * 200}}
            for number in range(1000)
        ]  # fmt: skip
        with pytest.raises(client.exceptions.ValidationError) as caught:
            await in_thread(
                client.put_training_jobs,
                AwsAccountId=ACCOUNT,
                TuningJobName="tj",
                TrainingJobs=batch,
            )

    message = assert_service_error(caught, errors.PayloadTooLarge)
    assert message == "Request body is larger than this operation accepts"


def test_client_methods_read_the_model_documentation(aws_env):
    client = sdk("http://127.0.0.1:1")

    # botocore writes these docstrings lazily, when they are turned into text.
    text = str(client.list_training_jobs_for_tuning_job.__doc__)
    paginator = client.get_paginator("list_training_jobs_for_tuning_job")

    assert "Gets one page of the training jobs of a tuning job." in text
    assert ":param TuningJobName: **[REQUIRED]**" in text
    assert "Present only when more training jobs follow" in text
    assert "PageSize" in str(paginator.paginate.__doc__)


@only_real_redis
async def test_injected_internal_failure_surfaces_without_internals(
    endpoint_for, app_factory
):
    async with endpoint_for(app_factory(fault_injection=True)) as endpoint:
        client = sdk(endpoint)
        await in_thread(
            client.put_fault_injection,
            AwsAccountId=ACCOUNT,
            Rules=[{"ErrorCode": "InternalFailure", "Probability": 1.0}],
        )
        with pytest.raises(client.exceptions.InternalFailure) as caught:
            await in_thread(
                client.list_training_jobs_for_tuning_job,
                AwsAccountId=ACCOUNT,
                TuningJobName="tj",
            )

    message = assert_service_error(caught, errors.InternalFailure)
    request_id = caught.value.response["ResponseMetadata"]["RequestId"]
    assert message == f"Internal failure; request id {request_id}"


@pytest.fixture
def stopped_redis() -> Any:
    """A Redis URL nothing answers at, and a way to start a server there."""
    server = RedisServer().start()
    server.stop()
    restarted: list[RedisServer] = []

    def restart() -> None:
        restarted.append(RedisServer(port=server.port).start())

    yield server.url, restart
    for again in restarted:
        again.stop()


async def test_store_outage_surfaces_as_service_unavailable(
    endpoint_for, stopped_redis
):
    url, _ = stopped_redis
    async with endpoint_for(redis_url=url, redis_timeout_s=0.5) as endpoint:
        client = sdk(endpoint)
        with pytest.raises(client.exceptions.ServiceUnavailable) as caught:
            await in_thread(
                client.list_training_jobs_for_tuning_job,
                AwsAccountId=ACCOUNT,
                TuningJobName="tj",
            )

    message = assert_service_error(caught, errors.ServiceUnavailable)
    assert message == "The service cannot reach its store; retry"


class RetryWatch:
    """Hooks boto3's retry decisions: runs `on_first` at the first `status`."""

    def __init__(self, status: int, on_first: Callable[[], None]) -> None:
        self.status = status
        self.on_first = on_first
        self.seen = threading.Event()

    def __call__(self, response: Any = None, **_: Any) -> None:
        if response is None or response[0].status_code != self.status:
            return
        if not self.seen.is_set():
            self.seen.set()
            self.on_first()


async def test_standard_retries_ride_out_a_store_outage(endpoint_for, stopped_redis):
    url, restart = stopped_redis
    # Runs in boto3's thread after the first 503, before it sleeps and
    # retries: the retry is then the attempt that meets Redis again.
    watch = RetryWatch(503, restart)
    async with endpoint_for(redis_url=url, redis_timeout_s=0.5) as endpoint:
        client = sdk(endpoint, retries={"mode": "standard", "total_max_attempts": 4})
        client.meta.events.register("needs-retry", watch)
        answer = await in_thread(
            client.create_tuning_job,
            AwsAccountId=ACCOUNT,
            TuningJobName="tj",
            ObjectiveMetricName="loss",
            ObjectiveType="Minimize",
        )

    assert watch.seen.is_set()
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1


@only_real_redis
async def test_throttling_surfaces_and_standard_retries_wait_for_the_budget(
    endpoint_for, app_factory
):
    now_s = [1_000_000.0]
    app = app_factory(throttle_rate=1.0, throttle_burst=1)
    # The budget refills only when the test moves this clock.
    app[guards.GUARDS].clock = lambda: now_s[0]

    def refill() -> None:
        now_s[0] += 2.0

    watch = RetryWatch(401, refill)
    async with endpoint_for(app) as endpoint:
        impatient = sdk(endpoint)
        patient = sdk(endpoint, retries={"mode": "standard", "total_max_attempts": 3})
        patient.meta.events.register("needs-retry", watch)
        list_call = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj"}

        with pytest.raises(impatient.exceptions.ResourceNotFound):
            await in_thread(impatient.list_training_jobs_for_tuning_job, **list_call)
        with pytest.raises(impatient.exceptions.Throttling) as caught:
            await in_thread(impatient.list_training_jobs_for_tuning_job, **list_call)
        with pytest.raises(patient.exceptions.ResourceNotFound) as retried:
            await in_thread(patient.list_training_jobs_for_tuning_job, **list_call)

    assert assert_service_error(caught, errors.Throttling) == "Rate exceeded"
    assert watch.seen.is_set()
    # Answered past the budget only after the retry that followed the refill.
    assert retried.value.response["ResponseMetadata"]["RetryAttempts"] == 1


async def aws_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run the AWS CLI from PyPI; return its JSON output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "awscli",
        *args,
        "--output",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or dict(os.environ),
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    assert process.returncode == 0, err.decode()
    return json.loads(out) if out.strip() else None


def cli_list(endpoint: str, *extra: str) -> list[str]:
    """The CLI words that list the training jobs of "tj"."""
    return [
        "sagemakerhpo",
        "list-training-jobs-for-tuning-job",
        "--endpoint-url",
        endpoint,
        "--aws-account-id",
        ACCOUNT,
        "--tuning-job-name",
        "tj",
        *extra,
    ]


@only_real_redis
async def test_aws_cli_pages_through_a_tuning_job_with_the_shipped_model(endpoint):
    jobs = training_jobs(9, seed=3)
    await in_thread(create_and_fill, sdk(endpoint), jobs)
    by_value = ["--sort-by", METRIC, "--sort-order", "Descending"]

    listed = await aws_cli(*cli_list(endpoint, *by_value, "--page-size", "2"))
    first = await aws_cli(*cli_list(endpoint, *by_value, "--max-items", "4"))
    rest = await aws_cli(
        *cli_list(endpoint, *by_value, "--starting-token", first["NextToken"])
    )

    wanted = expected_names(jobs, METRIC, "Descending", None)
    by_name = {job["TrainingJobName"]: job for job in jobs}
    assert [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]] == wanted
    assert "NextToken" not in listed
    for summary in listed["TrainingJobSummaries"]:
        job = by_name[summary["TrainingJobName"]]
        assert summary == {
            "TrainingJobName": job["TrainingJobName"],
            "TrainingJobStatus": job["TrainingJobStatus"],
            "HyperParameters": job["HyperParameters"],
            "RetriedAttempt": job["RetriedAttempt"],
            "FinalTuningJobObjectiveMetric": {
                "MetricName": "validation:accuracy",
                "Type": "Maximize",
                "Value": job["FinalObjectiveMetricValue"],
            },
        }
    resumed = first["TrainingJobSummaries"] + rest["TrainingJobSummaries"]
    assert resumed == listed["TrainingJobSummaries"]


@only_real_redis
async def test_aws_cli_add_model_installs_the_shipped_model(endpoint, tmp_path):
    jobs = training_jobs(4, seed=8)
    await in_thread(create_and_fill, sdk(endpoint), jobs)
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    del env["AWS_DATA_PATH"]

    await aws_cli(
        "configure",
        "add-model",
        "--service-model",
        model.service_model_file().as_uri(),
        "--service-name",
        model.SERVICE_NAME,
        env=env,
    )
    listed = await aws_cli(*cli_list(endpoint), env=env)

    installed = tmp_path / "home" / ".aws" / "models" / model.SERVICE_NAME
    assert (installed / model.API_VERSION / "service-2.json").exists()
    names = [s["TrainingJobName"] for s in listed["TrainingJobSummaries"]]
    assert names == expected_names(jobs, None, "Ascending", None)


@only_real_redis
async def test_sigv4_deployment_accepts_boto3_signatures_from_the_model(
    endpoint_for, app_factory, tmp_path, monkeypatch
):
    keys = tmp_path / "keys.json"
    keys.write_bytes(
        json.dumps(
            {
                "Credentials": [
                    {
                        "AccessKeyId": "AKIDEXAMPLE",
                        "SecretAccessKey": "dummy-secret",
                        "AwsAccountId": ACCOUNT,
                    }
                ]
            }
        ).encode()
    )
    app = app_factory(auth="sigv4", credentials_file=str(keys), region=REGION)

    async with endpoint_for(app) as endpoint:
        # The environment's keys are the ones in the file: boto3 signs for
        # the model's signingName and the region, and the server agrees.
        await in_thread(create_and_fill, sdk(endpoint), training_jobs(3))
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        forged = sdk(endpoint)
        with pytest.raises(forged.exceptions.AccessForbidden) as caught:
            await in_thread(
                forged.list_training_jobs_for_tuning_job,
                AwsAccountId=ACCOUNT,
                TuningJobName="tj",
            )

    assert_service_error(caught, errors.AccessForbidden)
