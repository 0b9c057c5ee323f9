"""Wire-level failures: every one is AWS-shaped, never a 500 or a hang."""

from __future__ import annotations

import logging

import orjson
import pytest
from redis.asyncio import Redis

from service.app import create_app

from .conftest import ACCOUNT, Api, create_tuning_job, make_settings
from .redis_servers import free_port

LIST = "ListTrainingJobsForTuningJob"


def _short(value):
    return repr(value[:40])


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{", "not valid JSON"),
        (b'{"AwsAccountId": "123456789012",}', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"AwsAccountId": "\\ud800"}', "not valid JSON"),
        (b'{"MaxResults": NaN}', "not valid JSON"),
        (b'{"MaxResults": Infinity}', "not valid JSON"),
        (b'{"MaxResults": -Infinity}', "not valid JSON"),
        (b'{"MaxResults": 1e400}', "not valid JSON"),
        # orjson refuses deep nesting in newer releases and reads it in older
        # ones; either way the answer is a ValidationError.
        (b"[" * 5000 + b"]" * 5000, ("not valid JSON", "must be a JSON object")),
        (
            b'{"Deep": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            ("not valid JSON", "'[...]' at 'deep'"),
        ),
        (
            b'{"Deep": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
            ("not valid JSON", "'{...}' at 'deep'"),
        ),
        (b"[]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"12", "must be a JSON object"),
        (b"", "2 validation errors detected"),
        (b"{}", "2 validation errors detected"),
    ],
    ids=_short,
)
async def test_malformed_bodies_are_validation_errors(api, body, fragment):
    response = await api.raw(LIST, body)
    payload = orjson.loads(await response.read())

    assert response.status == 400
    assert payload["__type"] == "ValidationError"
    assert response.headers["x-amzn-ErrorType"] == "ValidationError"
    fragments = (fragment,) if isinstance(fragment, str) else fragment
    assert any(part in payload["message"] for part in fragments), payload
    assert response.headers["x-amzn-RequestId"]


async def test_oversized_body_is_413_and_writes_nothing(
    aiohttp_client, app_factory, redis
):
    api = Api(await aiohttp_client(app_factory(max_body_bytes=1024)))
    await create_tuning_job(api)
    keys_before = await redis.dbsize()
    jobs = [
        {"TrainingJobName": f"job-{i}", "TrainingJobStatus": "Completed"}
        for i in range(100)
    ]
    body = orjson.dumps(
        {"AwsAccountId": ACCOUNT, "TuningJobName": "tj", "TrainingJobs": jobs}
    )

    response = await api.raw("PutTrainingJobs", body)

    assert response.status == 413
    assert (await response.json())["__type"] == "ValidationError"
    assert await redis.dbsize() == keys_before


@pytest.mark.parametrize(
    "method, path, status, code",
    [
        ("POST", "/NoSuchOperation", 404, "UnknownOperationException"),
        ("GET", "/", 404, "UnknownOperationException"),
        ("GET", f"/{LIST}", 405, "MethodNotAllowedException"),
        ("PUT", "/PutTrainingJobs", 405, "MethodNotAllowedException"),
    ],
)
async def test_unknown_paths_and_methods_are_aws_errors(
    api, method, path, status, code
):
    response = await api.client.request(method, path, data=b"{}")
    payload = await response.json()

    assert response.status == status
    assert payload["__type"] == code
    assert response.headers["x-amzn-ErrorType"] == code
    assert response.headers["x-amzn-RequestId"]


async def test_unexpected_failure_is_internal_and_reveals_nothing(
    aiohttp_client, app_factory, monkeypatch, caplog
):
    from service import storage

    async def broken(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/thing.py")

    monkeypatch.setattr(storage.Storage, "list_page", broken)
    api = Api(await aiohttp_client(app_factory()))

    with caplog.at_level(logging.ERROR):
        status, payload, response = await api.call(
            LIST, AwsAccountId=ACCOUNT, TuningJobName="tj"
        )

    request_id = response.headers["x-amzn-RequestId"]
    assert (status, payload["__type"]) == (500, "InternalFailure")
    assert "secret internals" not in payload["message"]
    assert request_id in payload["message"]
    failure = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failure) == 1
    assert failure[0].request_id == request_id
    assert failure[0].exc_info[0] is RuntimeError


async def test_unreachable_redis_is_service_unavailable(aiohttp_client):
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    dead = Redis.from_url(settings.redis_url, socket_connect_timeout=0.5)
    api = Api(await aiohttp_client(create_app(settings, redis=dead)))

    status, payload, response = await api.call(
        LIST, AwsAccountId=ACCOUNT, TuningJobName="tj"
    )

    assert (status, payload["__type"]) == (503, "ServiceUnavailable")
    assert response.headers["x-amzn-ErrorType"] == "ServiceUnavailable"
    await dead.aclose()
