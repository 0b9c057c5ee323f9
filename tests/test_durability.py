"""Acknowledged writes survive a SIGKILL of redis-server when AOF is on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.app import create_app

from .conftest import ACCOUNT, Api, create_tuning_job, make_settings
from .redis_servers import RedisServer

pytestmark = pytest.mark.real_redis

STRICT_AOF = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


@pytest.fixture
def server_factory() -> Iterator:
    started: list[RedisServer] = []

    def start(args: tuple[str, ...]) -> RedisServer:
        server = RedisServer(args=args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(kill=True)


async def write_and_kill(aiohttp_client, server: RedisServer) -> Api:
    """Acknowledged writes through the service, then SIGKILL and a restart."""
    settings = make_settings(redis_url=server.url, fault_injection=True)
    api = Api(await aiohttp_client(create_app(settings)))
    for name in ("first", "second"):
        await create_tuning_job(api, name)
    jobs = [
        {
            "TrainingJobName": f"j{i:03d}",
            "TrainingJobStatus": "Completed",
            "FinalObjectiveMetricValue": i / 10,
        }
        for i in range(200)
    ]
    answer = await api.ok(
        "PutTrainingJobs",
        AwsAccountId=ACCOUNT,
        TuningJobName="first",
        TrainingJobs=jobs,
    )
    assert answer == {"TrainingJobCount": 200}
    await api.ok("DeleteTuningJob", AwsAccountId=ACCOUNT, TuningJobName="second")

    server.stop(kill=True)  # SIGKILL: no shutdown save, no final fsync
    server.start()  # the same port and directory
    return api


async def test_acknowledged_writes_survive_sigkill_with_aof(
    aiohttp_client, server_factory
):
    api = await write_and_kill(aiohttp_client, server_factory(STRICT_AOF))

    page = await api.ok(
        "ListTrainingJobsForTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="first",
        SortBy="FinalObjectiveMetricValue",
        SortOrder="Descending",
        MaxResults=100,
    )
    found = page["TrainingJobSummaries"]
    assert [job["TrainingJobName"] for job in found[:2]] == ["j199", "j198"]
    assert len(found) == 100 and page["NextToken"]
    listed = await api.ok("ListTuningJobs", AwsAccountId=ACCOUNT)
    assert [item["TuningJobName"] for item in listed["TuningJobSummaries"]] == ["first"]
    described = await api.ok(
        "DescribeTuningJob", AwsAccountId=ACCOUNT, TuningJobName="first"
    )
    assert described["TrainingJobStatusCounters"]["Completed"] == 200


async def test_without_persistence_the_same_kill_loses_them(
    aiohttp_client, server_factory
):
    # The control: it shows the test above would notice lost writes.
    api = await write_and_kill(aiohttp_client, server_factory(NO_PERSISTENCE))

    listed = await api.ok("ListTuningJobs", AwsAccountId=ACCOUNT)
    assert listed == {"TuningJobSummaries": []}
