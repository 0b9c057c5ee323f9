"""Redis outages: a quick ServiceUnavailable, never a 500 or a hang, and recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from service.app import create_app

from .conftest import ACCOUNT, Api, make_settings
from .redis_servers import RedisServer, free_port

pytestmark = pytest.mark.real_redis

BOUND_S = 2.0
OPERATIONS = [
    ("ListTrainingJobsForTuningJob", {"TuningJobName": "tj"}),
    (
        "CreateTuningJob",
        {
            "TuningJobName": "tj",
            "ObjectiveMetricName": "m",
            "ObjectiveType": "Maximize",
        },
    ),
    (
        "PutTrainingJobs",
        {
            "TuningJobName": "tj",
            "TrainingJobs": [
                {"TrainingJobName": "a", "TrainingJobStatus": "Completed"}
            ],
        },
    ),
    ("DeleteTuningJob", {"TuningJobName": "tj"}),
    ("ListTuningJobs", {}),
    ("DescribeTuningJob", {"TuningJobName": "tj"}),
    ("GetFaultInjection", {}),
]


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and start."""
    own = RedisServer().start()
    try:
        yield own
    finally:
        own.stop()


async def service_over(aiohttp_client, url: str, **overrides) -> Api:
    """The service as deployed: it opens Redis itself, from the settings."""
    settings = make_settings(redis_url=url, fault_injection=True, **overrides)
    return Api(await aiohttp_client(create_app(settings)))


async def timed_call(api: Api, operation: str, body: dict) -> tuple[int, dict, float]:
    started = time.monotonic()
    status, payload, _ = await asyncio.wait_for(
        api.call(operation, AwsAccountId=ACCOUNT, **body), timeout=10
    )
    return status, payload, time.monotonic() - started


async def assert_unavailable(api: Api) -> None:
    for operation, body in OPERATIONS:
        status, payload, took_s = await timed_call(api, operation, body)
        assert (status, payload["__type"]) == (503, "ServiceUnavailable"), operation
        assert took_s < BOUND_S, (operation, took_s)


async def test_stopped_redis_answers_503_then_recovers(aiohttp_client, server):
    api = await service_over(aiohttp_client, server.url)
    await api.ok(*OPERATIONS[1][:1], AwsAccountId=ACCOUNT, **OPERATIONS[1][1])

    server.stop()
    await assert_unavailable(api)
    server.start()  # the same port and directory

    status, payload, _ = await timed_call(api, *OPERATIONS[0])
    assert status in (200, 404), payload  # 404: the data was not persisted
    await api.ok(*OPERATIONS[1][:1], AwsAccountId=ACCOUNT, **OPERATIONS[1][1])
    await api.ok(*OPERATIONS[0][:1], AwsAccountId=ACCOUNT, **OPERATIONS[0][1])


async def test_redis_that_never_listened_answers_503(aiohttp_client):
    api = await service_over(aiohttp_client, f"redis://127.0.0.1:{free_port()}/0")
    await assert_unavailable(api)


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A server that accepts connections and never answers a byte."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        held.append(writer)

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        listener.close()
        await listener.wait_closed()


async def test_silent_redis_answers_503_within_bound(aiohttp_client, silent_url):
    api = await service_over(aiohttp_client, silent_url)  # default timeouts
    for operation, body in OPERATIONS[:3]:
        status, payload, took_s = await timed_call(api, operation, body)
        assert (status, payload["__type"]) == (503, "ServiceUnavailable")
        assert took_s < BOUND_S, (operation, took_s)


async def test_paused_redis_answers_503_then_recovers(aiohttp_client, server):
    api = await service_over(aiohttp_client, server.url, redis_timeout_s=0.3)
    await api.ok(*OPERATIONS[1][:1], AwsAccountId=ACCOUNT, **OPERATIONS[1][1])
    admin = Redis.from_url(server.url, socket_timeout=5)
    try:
        # Redis holds every client's commands for a second, then goes on.
        await admin.execute_command("CLIENT", "PAUSE", "1000", "ALL")
        for operation, body in OPERATIONS[:2]:
            status, payload, took_s = await timed_call(api, operation, body)
            assert (status, payload["__type"]) == (503, "ServiceUnavailable")
            assert took_s < BOUND_S
        assert await admin.ping()  # answered once the pause is over
    finally:
        await admin.aclose()

    page = await api.ok(*OPERATIONS[0][:1], AwsAccountId=ACCOUNT, **OPERATIONS[0][1])
    assert page == {"TrainingJobSummaries": []}


async def test_paused_cluster_answers_503_within_bound(
    aiohttp_client, redis_cluster_url
):
    api = await service_over(aiohttp_client, redis_cluster_url, redis_cluster=True)
    await api.ok(*OPERATIONS[1][:1], AwsAccountId=ACCOUNT, **OPERATIONS[1][1])
    admin = ClusterClient.from_url(redis_cluster_url, socket_timeout=10)
    await admin.initialize()  # discovers the nodes to pause
    pause_ms = 3000
    try:
        assert len(admin.get_primaries()) == 3
        paused_at = time.monotonic()
        for node in admin.get_primaries():
            await admin.execute_command(
                "CLIENT", "PAUSE", str(pause_ms), "ALL", target_nodes=node
            )
        for operation, body in OPERATIONS[:2]:
            status, payload, took_s = await timed_call(api, operation, body)
            assert (status, payload.get("__type")) == (503, "ServiceUnavailable"), (
                operation,
                payload,
                took_s,
            )
            assert took_s < BOUND_S, (operation, took_s)
        # The session's cluster serves other tests: let the pause run out.
        await asyncio.sleep(max(0.0, pause_ms / 1000 - (time.monotonic() - paused_at)))
    finally:
        await admin.aclose()

    page = await api.ok(*OPERATIONS[0][:1], AwsAccountId=ACCOUNT, **OPERATIONS[0][1])
    assert page == {"TrainingJobSummaries": []}
