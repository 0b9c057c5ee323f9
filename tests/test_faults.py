"""Fault injection: stored per account in Redis, applied by every replica."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import orjson
import prometheus_client
import pytest

from service import guards, observability
from service.app import create_app, open_redis
from service.keys import STORAGE

from .conftest import ACCOUNT, OTHER_ACCOUNT, Api, create_tuning_job, make_settings
from .redis_servers import free_port

LIST = "ListTrainingJobsForTuningJob"


@pytest.fixture
def faulty_app(app_factory):
    """An application with fault injection on and a seeded random generator."""

    def build(seed: int = 7, **overrides: Any):
        app = app_factory(fault_injection=True, **overrides)
        app[guards.GUARDS].rng = random.Random(seed)
        return app

    return build


@pytest.fixture
async def faulty(aiohttp_client, faulty_app, tuning_job_factory) -> Api:
    api = Api(await aiohttp_client(faulty_app()))
    await tuning_job_factory(api)
    return api


@pytest.fixture
def tuning_job_factory():
    async def create(api: Api, account: str = ACCOUNT) -> None:
        await create_tuning_job(api, account=account)

    return create


def rule(code: str, probability: float = 1.0, operation: str | None = None) -> dict:
    found = {"ErrorCode": code, "Probability": probability}
    if operation is not None:
        found["Operation"] = operation
    return found


async def put_faults(api: Api, account: str = ACCOUNT, **config: Any) -> None:
    await api.ok("PutFaultInjection", AwsAccountId=account, **config)


async def list_jobs(api: Api, account: str = ACCOUNT) -> tuple[int, dict, Any]:
    return await api.call(LIST, AwsAccountId=account, TuningJobName="tj")


async def test_put_get_delete_round_trip(faulty, redis):
    assert await faulty.ok("GetFaultInjection", AwsAccountId=ACCOUNT) == {}
    config = {
        "Rules": [rule("Throttling", 0.25, LIST), rule("InternalFailure", 0.5)],
        "LatencyMs": {"Min": 0, "Max": 5},
        "ExpiresInSeconds": 600,
    }
    await put_faults(faulty, **config)

    got = await faulty.ok("GetFaultInjection", AwsAccountId=ACCOUNT)
    assert 590 <= got.pop("ExpiresInSeconds") <= 600
    config.pop("ExpiresInSeconds")
    assert got == config

    await faulty.ok("DeleteFaultInjection", AwsAccountId=ACCOUNT)
    assert await faulty.ok("GetFaultInjection", AwsAccountId=ACCOUNT) == {}
    assert (await list_jobs(faulty))[0] == 200


async def test_expiry_is_left_to_redis(faulty, aiohttp_client):
    await put_faults(faulty, Rules=[rule("Throttling")], ExpiresInSeconds=30)
    assert (await list_jobs(faulty))[0] == 401

    accounts = faulty.client.app[STORAGE].accounts
    _, ttl_s = await accounts.faults_with_ttl(ACCOUNT)
    assert 0 < ttl_s <= 30
    await accounts.redis.expire(f"hpo:{{{ACCOUNT}}}:faults", 0)  # time passes
    assert (await list_jobs(faulty))[0] == 200


async def test_without_expiry_the_config_stays(faulty):
    await put_faults(faulty, Rules=[])
    got = await faulty.ok("GetFaultInjection", AwsAccountId=ACCOUNT)
    assert got == {"Rules": []}


@pytest.mark.parametrize(
    "code, status",
    [("Throttling", 401), ("ServiceUnavailable", 503), ("InternalFailure", 500)],
)
async def test_probability_one_always_fails_with_the_code(faulty, code, status):
    await put_faults(faulty, Rules=[rule(code)])
    for _ in range(3):
        got, payload, response = await list_jobs(faulty)
        assert (got, payload["__type"]) == (status, code)
        assert response.headers["x-amzn-ErrorType"] == code


async def test_probability_is_drawn_from_the_injected_generator(faulty):
    await put_faults(faulty, Rules=[rule("Throttling", 0.5)])
    faulty.client.app[guards.GUARDS].rng = random.Random(42)
    reference = random.Random(42)

    got = [(await list_jobs(faulty))[0] for _ in range(40)]

    expected = [401 if reference.random() < 0.5 else 200 for _ in range(40)]
    assert got == expected
    assert 0 < got.count(401) < 40


async def test_probability_zero_never_fails(faulty):
    await put_faults(faulty, Rules=[rule("InternalFailure", 0.0)])
    assert [(await list_jobs(faulty))[0] for _ in range(10)] == [200] * 10


async def test_rules_apply_to_their_operation_only(faulty):
    await put_faults(faulty, Rules=[rule("ServiceUnavailable", 1.0, LIST)])

    assert (await list_jobs(faulty))[0] == 503
    status, _, _ = await faulty.call(
        "DescribeTuningJob", AwsAccountId=ACCOUNT, TuningJobName="tj"
    )
    assert status == 200


async def test_faults_touch_only_their_account(faulty, tuning_job_factory):
    await tuning_job_factory(faulty, OTHER_ACCOUNT)
    await put_faults(faulty, Rules=[rule("InternalFailure")])

    assert (await list_jobs(faulty))[0] == 500
    assert (await list_jobs(faulty, OTHER_ACCOUNT))[0] == 200


async def test_fault_operations_are_never_faulted(faulty):
    await put_faults(faulty, Rules=[rule("InternalFailure")])

    assert await faulty.ok("GetFaultInjection", AwsAccountId=ACCOUNT)
    await faulty.ok("DeleteFaultInjection", AwsAccountId=ACCOUNT)
    assert (await list_jobs(faulty))[0] == 200


async def test_every_replica_applies_the_config(aiohttp_client, faulty_app):
    first = Api(await aiohttp_client(faulty_app()))
    second = Api(await aiohttp_client(faulty_app()))

    await put_faults(first, Rules=[rule("ServiceUnavailable")])

    status, payload, _ = await list_jobs(second)
    assert (status, payload["__type"]) == (503, "ServiceUnavailable")


async def test_latency_is_drawn_between_min_and_max(faulty):
    delays: list[float] = []

    async def record(delay_s: float) -> None:
        delays.append(delay_s)

    faulty.client.app[guards.GUARDS].sleep = record
    await put_faults(faulty, Rules=[], LatencyMs={"Min": 20, "Max": 40})

    for _ in range(20):
        assert (await list_jobs(faulty))[0] == 200

    assert len(delays) == 20
    assert all(0.020 <= delay <= 0.040 for delay in delays)
    assert len(set(delays)) > 1


async def test_latency_really_delays_the_answer(faulty):
    await put_faults(faulty, Rules=[], LatencyMs={"Min": 60, "Max": 60})

    started = time.monotonic()
    assert (await list_jobs(faulty))[0] == 200

    assert time.monotonic() - started >= 0.055  # the loop may wake a hair early


def injected_count() -> float:
    labels = {"operation": LIST, "kind": "Throttling"}
    found = prometheus_client.REGISTRY.get_sample_value(
        "hpo_injected_faults_total", labels
    )
    return found or 0.0


async def test_injected_errors_are_logged_and_counted_apart(faulty, caplog):
    await put_faults(faulty, Rules=[rule("Throttling", 0.5)])
    counted_before = injected_count()
    with caplog.at_level(logging.INFO, logger="service.guards"):
        statuses = [(await list_jobs(faulty))[0] for _ in range(20)]

    assert injected_count() - counted_before == statuses.count(401)

    injected = [r for r in caplog.records if getattr(r, "injected", False)]
    assert len(injected) == statuses.count(401) > 0
    assert {(r.account, r.operation, r.code) for r in injected} == {
        (ACCOUNT, LIST, "Throttling")
    }
    # The JSON log line an operator greps carries the mark too.
    line = orjson.loads(observability.JsonFormatter().format(injected[0]))
    assert line["injected"] is True


async def test_disabled_by_default(api, redis):
    status, payload, _ = await api.call(
        "PutFaultInjection", AwsAccountId=ACCOUNT, Rules=[]
    )
    assert (status, payload["__type"]) == (403, "AccessForbidden")

    # A config left in Redis is not applied while the setting is off.
    accounts = api.client.app[STORAGE].accounts
    stored = guards.encode_faults({"rules": [{"error_code": "Throttling",
                                             "probability": 1.0}]})  # fmt: skip
    await accounts.put_faults(ACCOUNT, stored, None)
    status, payload, _ = await list_jobs(api)
    assert payload["__type"] == "ResourceNotFound"


BAD_CONFIGS = [
    ({"Rules": [rule("Throttling", 1.5)]}, "rules.1.member.probability"),
    ({"Rules": [rule("Throttling", -0.1)]}, "rules.1.member.probability"),
    ({"Rules": [rule("Boom")]}, "rules.1.member.errorCode"),
    ({"Rules": [{"ErrorCode": "Throttling"}]}, "rules.1.member.probability"),
    ({"Rules": [rule("Throttling", 1, "Nope")]}, "rules.1.member.operation"),
    (
        {"Rules": [rule("Throttling", 1, "DeleteFaultInjection")]},
        "rules.1.member.operation",
    ),
    ({"Rules": [rule("Throttling", True)]}, "rules.1.member.probability"),
    ({}, "rules"),
    ({"Rules": [rule("Throttling")] * 21}, "rules"),
    ({"Rules": [], "LatencyMs": {"Min": 5, "Max": 1}}, "latencyMs"),
    ({"Rules": [], "LatencyMs": {"Min": 0}}, "latencyMs.max"),
    ({"Rules": [], "LatencyMs": {"Min": 0, "Max": 10_001}}, "latencyMs.max"),
    ({"Rules": [], "LatencyMs": 5}, "latencyMs"),
    ({"Rules": [], "ExpiresInSeconds": 0}, "expiresInSeconds"),
    ({"Rules": [], "Extra": 1}, "extra"),
]


@pytest.mark.parametrize("config, where", BAD_CONFIGS)
async def test_bad_configs_are_refused_and_change_nothing(faulty, config, where):
    message = await faulty.error(
        "PutFaultInjection", "ValidationError", AwsAccountId=ACCOUNT, **config
    )
    assert f"at '{where}'" in message
    assert await faulty.ok("GetFaultInjection", AwsAccountId=ACCOUNT) == {}


def _wire(status: int, payload: dict, response: Any) -> tuple:
    """What a client sees of an error, but the request id."""
    headers = {
        name: value
        for name, value in response.headers.items()
        if name.lower() not in ("date", "x-amzn-requestid", "content-length")
    }
    request_id = response.headers["x-amzn-RequestId"]
    message = payload["message"].replace(request_id, "<id>")
    return status, {**payload, "message": message}, headers


async def test_injected_throttling_looks_like_real_throttling(
    aiohttp_client, faulty_app, tuning_job_factory
):
    api = Api(await aiohttp_client(faulty_app(throttle_rate=1.0, throttle_burst=1)))
    await tuning_job_factory(api)
    real = _wire(*await list_jobs(api))  # the bucket is empty after the create
    assert real[0] == 401

    await api.client.app[STORAGE].accounts.redis.flushdb()
    await put_faults(api, Rules=[rule("Throttling")])
    api.client.app[guards.GUARDS].settings = make_settings(fault_injection=True)
    injected = _wire(*await list_jobs(api))

    assert injected == real


async def test_injected_unavailability_looks_like_a_real_outage(aiohttp_client, faulty):
    await put_faults(faulty, Rules=[rule("ServiceUnavailable")])
    injected = _wire(*await list_jobs(faulty))

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    nowhere = open_redis(make_settings(redis_url=url))
    try:
        down = Api(await aiohttp_client(create_app(make_settings(), redis=nowhere)))
        real = _wire(*await list_jobs(down))
    finally:
        await nowhere.aclose()

    assert injected == real


async def test_injected_internal_failure_looks_like_a_real_one(
    aiohttp_client, faulty, monkeypatch
):
    await put_faults(faulty, Rules=[rule("InternalFailure")])
    injected = _wire(*await list_jobs(faulty))
    await faulty.ok("DeleteFaultInjection", AwsAccountId=ACCOUNT)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(faulty.client.app[STORAGE], "list_page", broken)
    real = _wire(*await list_jobs(faulty))

    assert injected == real
    assert injected[0] == 500


async def test_a_slow_fault_does_not_block_other_requests(faulty):
    await put_faults(faulty, Rules=[], LatencyMs={"Min": 300, "Max": 300})

    slow = asyncio.ensure_future(list_jobs(faulty))
    await asyncio.sleep(0.01)  # the slow request is waiting out its latency
    status, _, _ = await list_jobs(faulty, OTHER_ACCOUNT)  # no faults there

    assert status == 404
    assert not slow.done()
    assert (await slow)[0] == 200


async def test_injected_latency_does_not_count_against_the_store_deadline(
    aiohttp_client, faulty_app, tuning_job_factory
):
    api = Api(await aiohttp_client(faulty_app(store_deadline_s=0.2)))
    await tuning_job_factory(api)
    await put_faults(api, Rules=[], LatencyMs={"Min": 300, "Max": 300})

    started = time.monotonic()
    status, payload, _ = await list_jobs(api)

    assert (status, payload) == (200, {"TrainingJobSummaries": []})
    assert time.monotonic() - started >= 0.3
