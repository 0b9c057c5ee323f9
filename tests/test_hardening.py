"""Request hardening: body limits per operation, header limits, slow clients."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis
import orjson
import pytest

from service import guards
from service.app import create_app

from .conftest import ACCOUNT, Api, make_settings

SMALL = guards.SMALL_BODY_BYTES


def padded(size: int, **body: Any) -> bytes:
    """A JSON body of exactly `size` bytes (whitespace pads it)."""
    raw = orjson.dumps(body)
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def put_body(count: int) -> dict:
    jobs = [
        {
            "TrainingJobName": f"job-{i:05d}",
            "TrainingJobStatus": "Completed",
            "HyperParameters": {"learning-rate": "0.001", "batch": "64"},
            "FinalObjectiveMetricValue": i / 7,
        }
        for i in range(count)
    ]
    return {"AwsAccountId": ACCOUNT, "TuningJobName": "tj", "TrainingJobs": jobs}


@pytest.fixture
async def hardened(aiohttp_client, app_factory) -> Api:
    return Api(await aiohttp_client(app_factory(max_body_bytes=512 * 1024)))


@pytest.fixture
def plain_factory(aiohttp_client):
    """The service over fakeredis, for rules that do not depend on the store."""

    async def build(**overrides: Any) -> Api:
        app = create_app(make_settings(**overrides), redis=fakeredis.FakeAsyncRedis())
        return Api(await aiohttp_client(app))

    return build


@pytest.fixture
async def plain(plain_factory) -> Api:
    return await plain_factory()


async def assert_too_large(response) -> None:
    payload = orjson.loads(await response.read())
    assert response.status == 413, payload
    assert payload["__type"] == "ValidationError"
    assert response.headers["x-amzn-ErrorType"] == "ValidationError"


@pytest.mark.parametrize(
    "operation",
    [
        "ListTrainingJobsForTuningJob",
        "CreateTuningJob",
        "DeleteTuningJob",
        "ListTuningJobs",
        "DescribeTuningJob",
    ],
)
async def test_small_operations_refuse_bodies_over_their_limit(api, operation):
    body = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj"}
    if operation == "ListTuningJobs":
        body.pop("TuningJobName")

    over = await api.raw(operation, padded(SMALL + 1, **body))
    await assert_too_large(over)

    at_limit = await api.raw(operation, padded(SMALL, **body))
    assert at_limit.status != 413


async def test_fault_injection_bodies_are_small(plain_factory):
    api = await plain_factory(fault_injection=True)
    body = {"AwsAccountId": ACCOUNT, "Rules": []}

    await assert_too_large(
        await api.raw("PutFaultInjection", padded(SMALL + 1, **body))
    )
    assert (await api.raw("PutFaultInjection", padded(SMALL, **body))).status == 200


async def test_put_may_use_the_whole_global_limit(hardened, app_factory):
    await hardened.ok(
        "CreateTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        ObjectiveMetricName="m",
        ObjectiveType="Maximize",
    )
    body = orjson.dumps(put_body(1000))
    assert SMALL < len(body) < 512 * 1024

    response = await hardened.raw("PutTrainingJobs", body)
    assert response.status == 200, await response.read()

    await assert_too_large(
        await hardened.raw("PutTrainingJobs", padded(512 * 1024 + 1, **put_body(1)))
    )


async def test_chunked_bodies_are_measured_too(plain):
    async def chunks():
        body = padded(SMALL + 100, AwsAccountId=ACCOUNT, TuningJobName="tj")
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = await plain.client.post("/ListTrainingJobsForTuningJob", data=chunks())
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    await assert_too_large(response)


async def test_too_large_changes_nothing(api, tuning_job, redis):
    await tuning_job()
    body = padded(SMALL + 1, AwsAccountId=ACCOUNT, TuningJobName="tj")
    await assert_too_large(await api.raw("DeleteTuningJob", body))

    described = await api.ok(
        "DescribeTuningJob", AwsAccountId=ACCOUNT, TuningJobName="tj"
    )
    assert described["TuningJobName"] == "tj"


async def raw_exchange(api: Api, request: bytes, wait_s: float = 5) -> tuple:
    """Send raw bytes; return what the server sent and when it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", api.client.server.port)
    started = time.monotonic()
    writer.write(request)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), wait_s)  # until closed
    finally:
        writer.close()
    return answer, time.monotonic() - started


async def test_a_body_that_never_finishes_is_cut_off(plain_factory):
    api = await plain_factory(body_timeout_s=0.3)
    head = (
        b"POST /ListTrainingJobsForTuningJob HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )

    answer, took_s = await raw_exchange(api, head + b'{"AwsAccountId": ')

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"x-amzn-ErrorType: RequestTimeout" in answer
    assert 0.3 <= took_s < 2


async def test_a_slow_body_within_the_timeout_is_served(plain_factory):
    api = await plain_factory(body_timeout_s=1.0)
    body = orjson.dumps({"AwsAccountId": ACCOUNT})

    async def slowly():
        for byte in range(len(body)):
            await asyncio.sleep(0.005)
            yield body[byte : byte + 1]

    response = await api.client.post("/ListTuningJobs", data=slowly())
    assert response.status == 200


async def test_headers_that_never_finish_are_cut_off(plain_factory):
    api = await plain_factory(idle_timeout_s=0.3)

    answer, took_s = await raw_exchange(
        api, b"POST /ListTuningJobs HTTP/1.1\r\nHost: x\r\nX-Slow: "
    )

    assert b"200 OK" not in answer
    assert took_s < 2


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Big": "a" * (guards.MAX_FIELD_BYTES + 10)},
        {f"X-Many-{i}": "1" for i in range(guards.MAX_HEADERS + 1)},
    ],
)
async def test_oversized_headers_are_refused(plain, headers):
    response = await plain.client.post(
        "/ListTuningJobs", data=orjson.dumps({"AwsAccountId": ACCOUNT}), headers=headers
    )
    assert response.status in (400, 431)


async def test_an_oversized_request_line_is_refused(plain):
    path = "/ListTuningJobs?" + "a" * guards.MAX_LINE_BYTES
    answer, _ = await raw_exchange(
        plain,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode(),
    )
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] in (b"400", b"414"), status_line


async def test_headers_within_limits_are_served(plain):
    response = await plain.client.post(
        "/ListTuningJobs",
        data=orjson.dumps({"AwsAccountId": ACCOUNT}),
        headers={"X-Big": "a" * (guards.MAX_FIELD_BYTES - 100)},
    )
    assert response.status == 200
