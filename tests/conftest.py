"""Fixtures: every behavioural test runs against fakeredis and a real Redis."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fakeredis
import orjson
import pytest
from redis.asyncio import Redis

from service.app import create_app
from service.settings import Settings

from .cluster import RedisCluster, WholeClusterClient
from .redis_servers import RedisServer

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
SECRET = b"test-secret"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for the session: HPO_TEST_REDIS_URL, or one we start."""
    given = os.environ.get("HPO_TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A real Redis Cluster of three masters for the session, named by one node."""
    cluster = RedisCluster().start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(
    params=[
        "fake",
        pytest.param("real", marks=pytest.mark.real_redis),
        pytest.param("cluster", marks=pytest.mark.real_redis),
    ]
)
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """An empty store: fakeredis, the real server or the cluster, flushed."""
    if request.param == "fake":
        client = fakeredis.FakeAsyncRedis()
    elif request.param == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
        client = WholeClusterClient.from_url(url)
        await client.flushdb(target_nodes=WholeClusterClient.PRIMARIES)
    else:
        client = Redis.from_url(request.getfixturevalue("redis_url"))
        await client.flushdb()
    yield client
    await client.aclose()


class Api:
    """Calls operations the way an SDK does: POST /<Operation> with JSON."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def raw(self, operation: str, body: bytes, **kwargs: Any) -> Any:
        return await self.client.post(f"/{operation}", data=body, **kwargs)

    async def call(self, operation: str, **body: Any) -> tuple[int, dict, Any]:
        response = await self.raw(operation, orjson.dumps(body))
        return response.status, orjson.loads(await response.read()), response

    async def ok(self, operation: str, **body: Any) -> dict:
        status, payload, _ = await self.call(operation, **body)
        assert status == 200, payload
        return payload

    async def error(self, operation: str, code: str, **body: Any) -> str:
        _, payload, response = await self.call(operation, **body)
        assert payload["__type"] == code, payload
        assert response.headers["x-amzn-ErrorType"] == code
        return payload["message"]


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: a fixed token secret unless told otherwise."""
    return Settings(token_secret=SECRET, **overrides)


@pytest.fixture
def app_factory(redis: Redis):
    """Build an application over the test's store, with settings overrides."""

    def build(**overrides: Any):
        return create_app(make_settings(**overrides), redis=redis)

    return build


@pytest.fixture
async def api(aiohttp_client: Any, app_factory: Any) -> Api:
    return Api(await aiohttp_client(app_factory()))


async def create_tuning_job(
    api: Api,
    name: str = "tj",
    account: str = ACCOUNT,
    metric: str = "accuracy",
    objective: str = "Maximize",
) -> str:
    """Create a tuning job through the API and return its name."""
    await api.ok(
        "CreateTuningJob",
        AwsAccountId=account,
        TuningJobName=name,
        ObjectiveMetricName=metric,
        ObjectiveType=objective,
    )
    return name


@pytest.fixture
def tuning_job(api: Api):
    """Create a tuning job (Maximize 'accuracy' unless told) and return its name."""

    async def create(*args: Any, **options: Any) -> str:
        return await create_tuning_job(api, *args, **options)

    return create
