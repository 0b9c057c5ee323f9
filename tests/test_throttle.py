"""Throttling: a token bucket per account, in Redis, shared by every replica."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from service import guards
from service import settings as settings_module
from service.app import create_app

from .conftest import ACCOUNT, OTHER_ACCOUNT, Api, make_settings


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now_s: float = 1_700_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttled_api(aiohttp_client, app_factory, clock):
    async def build(**overrides: Any) -> Api:
        app = app_factory(**overrides)
        app[guards.GUARDS].clock = clock
        return Api(await aiohttp_client(app))

    return build


async def list_status(api: Api, account: str = ACCOUNT) -> tuple[int, dict]:
    status, payload, _ = await api.call(
        "ListTrainingJobsForTuningJob", AwsAccountId=account, TuningJobName="tj"
    )
    return status, payload


async def test_burst_then_throttled_until_tokens_refill(throttled_api, clock):
    api = await throttled_api(throttle_rate=2.0, throttle_burst=3)

    answers = [(await list_status(api))[0] for _ in range(4)]
    assert answers == [404, 404, 404, 401]  # 404: passed, tuning job unknown

    clock.now_s += 0.5  # one token at 2 per second
    assert [(await list_status(api))[0] for _ in range(2)] == [404, 401]
    clock.now_s += 100  # never more than the burst
    answers = [(await list_status(api))[0] for _ in range(4)]
    assert answers == [404, 404, 404, 401]


async def test_throttled_answer_has_the_aws_shape(throttled_api):
    api = await throttled_api(throttle_rate=1.0, throttle_burst=1)
    await list_status(api)

    status, payload, response = await api.call(
        "ListTrainingJobsForTuningJob", AwsAccountId=ACCOUNT, TuningJobName="tj"
    )

    assert status == 401
    assert payload == {"__type": "Throttling", "message": "Rate exceeded"}
    assert response.headers["x-amzn-ErrorType"] == "Throttling"
    assert response.headers["x-amzn-RequestId"]


async def test_one_account_never_throttles_another(throttled_api):
    api = await throttled_api(throttle_rate=1.0, throttle_burst=2)
    for _ in range(5):
        await list_status(api)
    assert (await list_status(api))[0] == 401

    assert [(await list_status(api, OTHER_ACCOUNT))[0] for _ in range(3)] == [
        404,
        404,
        401,
    ]


async def test_replicas_share_one_bucket(aiohttp_client, redis, clock):
    replicas = []
    for _ in range(2):
        app = create_app(
            make_settings(throttle_rate=1.0, throttle_burst=4), redis=redis
        )
        app[guards.GUARDS].clock = clock
        replicas.append(Api(await aiohttp_client(app)))

    answers = [(await list_status(replicas[i % 2]))[0] for i in range(6)]

    assert answers == [404, 404, 404, 404, 401, 401]


async def test_the_redis_clock_is_used_without_an_injected_one(aiohttp_client, redis):
    app = create_app(make_settings(throttle_rate=0.01, throttle_burst=2), redis=redis)
    api = Api(await aiohttp_client(app))

    assert [(await list_status(api))[0] for _ in range(3)] == [404, 404, 401]


async def test_default_burst_is_one_second_of_requests(throttled_api):
    api = await throttled_api(throttle_rate=3.0)
    assert [(await list_status(api))[0] for _ in range(4)] == [404, 404, 404, 401]


async def test_invalid_bodies_pass_to_validation(throttled_api):
    api = await throttled_api(throttle_rate=1.0, throttle_burst=1)
    for _ in range(3):
        status, payload, _ = await api.call("ListTrainingJobsForTuningJob")
        assert (status, payload["__type"]) == (400, "ValidationError")


class CountingRedis(Redis):
    """A client that counts the commands it sends (a script call is one)."""

    sent = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent += 1
        return await super().execute_command(*args, **options)


@pytest.mark.real_redis
@pytest.mark.parametrize(
    "overrides, extra_commands",
    [
        ({}, 0),
        ({"fault_injection": True}, 1),  # one GET of the fault config
        ({"throttle_rate": 100.0}, 1),  # one script call
        ({"throttle_rate": 100.0, "fault_injection": True}, 1),  # the same one
    ],
)
async def test_round_trips_per_request(
    aiohttp_client, redis_url, overrides, extra_commands
):
    redis = CountingRedis.from_url(redis_url)
    try:
        await redis.flushdb()
        app = create_app(make_settings(**overrides), redis=redis)
        api = Api(await aiohttp_client(app))
        await list_status(api)  # loads the scripts into Redis

        before = redis.sent
        assert (await list_status(api))[0] == 404
        sent = redis.sent - before
    finally:
        await redis.aclose()

    assert sent == 1 + extra_commands  # the page's script, and the guards'


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({}, (0.0, 1)),
        ({"HPO_THROTTLE_RATE": "2.5"}, (2.5, 3)),
        ({"HPO_THROTTLE_RATE": "0.1"}, (0.1, 1)),
        ({"HPO_THROTTLE_RATE": "10", "HPO_THROTTLE_BURST": "50"}, (10.0, 50)),
    ],
)
def test_throttle_settings(variables, expected):
    loaded = settings_module.load([], variables)
    assert (loaded.throttle_rate, guards.burst_of(loaded)) == expected


@pytest.mark.parametrize(
    "variables, reason",
    [
        ({"HPO_THROTTLE_RATE": "-1"}, "HPO_THROTTLE_RATE (--throttle-rate)"),
        ({"HPO_THROTTLE_RATE": "fast"}, "must be a number"),
        ({"HPO_THROTTLE_BURST": "0"}, "HPO_THROTTLE_BURST (--throttle-burst)"),
        ({"HPO_FAULT_INJECTION": "maybe"}, "must be one of on, off"),
        ({"HPO_BODY_TIMEOUT_S": "0"}, "HPO_BODY_TIMEOUT_S (--body-timeout-s)"),
        ({"HPO_IDLE_TIMEOUT_S": "x"}, "HPO_IDLE_TIMEOUT_S (--idle-timeout-s)"),
    ],
)
def test_bad_shared_deployment_settings_are_refused(variables, reason):
    with pytest.raises(settings_module.SettingsError) as problem:
        settings_module.load([], variables)
    assert reason in str(problem.value)
