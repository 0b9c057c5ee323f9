"""Redis Cluster mode: the client chosen, slots per tuning job, a real server."""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
from typing import Any

import orjson
import pytest
from redis.asyncio.cluster import RedisCluster

from service import settings as settings_module
from service.app import create_app, open_redis
from service.settings import Settings

from .cluster import WholeClusterClient
from .conftest import ACCOUNT, OTHER_ACCOUNT, Api, create_tuning_job, make_settings
from .tools import start_service, stderr_of

pytestmark = pytest.mark.real_redis

_TAG = re.compile(rb"\{([^}]*)\}")


async def test_cluster_flag_opens_a_cluster_client(redis_cluster_url):
    cluster = open_redis(Settings(redis_url=redis_cluster_url, redis_cluster=True))
    single = open_redis(Settings(redis_url=redis_cluster_url))

    assert isinstance(cluster, RedisCluster)
    assert await cluster.ping()
    assert not isinstance(single, RedisCluster)
    await cluster.aclose()
    await single.aclose()


@pytest.mark.parametrize(
    "environ, problem",
    [
        ({"HPO_REDIS_CLUSTER": "1"}, "needs HPO_REDIS_URL"),
        ({"HPO_REDIS_CLUSTER": "yes", "HPO_REDIS_URL": "redis://h"}, "1 or 0"),
    ],
)
def test_cluster_settings_are_checked(environ, problem):
    with pytest.raises(settings_module.SettingsError, match=problem):
        settings_module.load([], environ)


@pytest.mark.parametrize("text, expected", [("1", True), ("0", False), ("on", True)])
def test_cluster_flag_values(text, expected):
    environ = {"HPO_REDIS_CLUSTER": text, "HPO_REDIS_URL": "redis://h"}
    assert settings_module.load([], environ).redis_cluster is expected


async def test_every_key_of_a_tuning_job_or_account_lives_on_one_slot(
    aiohttp_client: Any, redis_cluster_url: str
):
    client = WholeClusterClient.from_url(redis_cluster_url)
    await client.flushdb(target_nodes=WholeClusterClient.PRIMARIES)
    app = create_app(make_settings(throttle_rate=100.0), redis=client)
    api = Api(await aiohttp_client(app))
    statuses = ["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
    for account in (ACCOUNT, OTHER_ACCOUNT):
        for name in ("a", "b", "c", "d"):
            await create_tuning_job(api, name, account, "m", "Minimize")
            jobs = [
                {"TrainingJobName": f"j{i}", "TrainingJobStatus": status,
                 "FinalObjectiveMetricValue": float(i)}
                for i, status in enumerate(statuses)
            ]  # fmt: skip
            await api.ok(
                "PutTrainingJobs",
                AwsAccountId=account,
                TuningJobName=name,
                TrainingJobs=jobs,
            )

    slots_by_tag: dict[bytes, set[int]] = {}
    for key in await client.keys("hpo:*"):
        tag = _TAG.search(key)
        assert tag is not None, key  # every key carries a hash tag
        slots_by_tag.setdefault(tag.group(1), set()).add(client.keyslot(key))

    tuning_jobs = [tag for tag in slots_by_tag if b":" in tag]
    assert len(tuning_jobs) == 8
    assert all(len(slots) == 1 for slots in slots_by_tag.values()), slots_by_tag
    # The tuning jobs spread over the masters rather than crowding one slot.
    assert len({slot for slots in slots_by_tag.values() for slot in slots}) > 1
    await client.aclose()


def test_server_serves_from_a_cluster_named_by_one_node(redis_cluster_url):
    process, port = start_service(
        {
            "HPO_REDIS_URL": redis_cluster_url,
            "HPO_REDIS_CLUSTER": "1",
            "HPO_SHUTDOWN_GRACE_S": "0.1",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_ready(port, process)
        for name in ("x1", "x2", "x3", "x4", "x5", "x6"):
            body = {"AwsAccountId": ACCOUNT, "TuningJobName": name}
            _post(port, "CreateTuningJob", {**body, "ObjectiveMetricName": "m",
                                            "ObjectiveType": "Maximize"})  # fmt: skip
            job = {"TrainingJobName": "j", "TrainingJobStatus": "Completed"}
            _post(port, "PutTrainingJobs", {**body, "TrainingJobs": [job]})
            page = _post(port, "ListTrainingJobsForTuningJob", body)
            assert [s["TrainingJobName"] for s in page["TrainingJobSummaries"]] == ["j"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, stderr_of(process)


def _post(port: int, operation: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{operation}", data=orjson.dumps(body)
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def _wait_until_ready(port: int, process: subprocess.Popen) -> None:
    """Until /readyz answers 200: the cluster answered a PING."""
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(stderr_of(process))
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/readyz", timeout=1
            ) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server never became ready")
