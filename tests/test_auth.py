"""SigV4: requests signed by botocore pass; every kind of bad one is refused."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
import botocore.session
import orjson
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from service import auth, guards, model
from service import settings as settings_module

from .conftest import ACCOUNT, OTHER_ACCOUNT
from .tools import start_service

KEY_ID = "AKIDHPOTEST0000000001"
SECRET_KEY = "hpo-test-secret/K7MDENG+bPxRfiCYEXAMPLE"
OTHER_KEY_ID = "AKIDHPOTEST0000000002"
OTHER_SECRET_KEY = "hpo-other-secret/zzMDENG+bPxRfiCYEXAMPLE"
NEW_KEY_ID = "AKIDHPOTEST0000000003"
NEW_SECRET_KEY = "hpo-new-secret/qqMDENG+bPxRfiCYEXAMPLE"


def write_credentials(path, *entries: tuple[str, str, str]) -> str:
    """Write a credentials file of (key id, secret, account) entries."""
    document = {
        "Credentials": [
            {"AccessKeyId": key, "SecretAccessKey": secret, "AwsAccountId": account}
            for key, secret, account in entries
        ]
    }
    path.write_bytes(orjson.dumps(document))
    return str(path)


@pytest.fixture
def credentials_file(tmp_path) -> str:
    return write_credentials(
        tmp_path / "credentials.json",
        (KEY_ID, SECRET_KEY, ACCOUNT),
        (OTHER_KEY_ID, OTHER_SECRET_KEY, OTHER_ACCOUNT),
    )


class Signed:
    """Calls operations with bodies and headers signed by botocore's SigV4Auth."""

    def __init__(self, client: Any, app: Any) -> None:
        self.client = client
        self.app = app

    def headers(
        self,
        operation: str,
        body: bytes,
        *,
        key: tuple[str, str] = (KEY_ID, SECRET_KEY),
        region: str = "us-east-1",
        service: str = "sagemakerhpo",
        query: str = "",
        extra: dict[str, str] | None = None,
    ) -> dict[str, str]:
        url = str(self.client.make_url(f"/{operation}")) + query
        request = AWSRequest(
            method="POST",
            url=url,
            data=body,
            headers={"Content-Type": "application/json", **(extra or {})},
        )
        SigV4Auth(Credentials(*key), service, region).add_auth(request)
        return dict(request.headers.items())

    async def send(
        self,
        operation: str,
        body: bytes,
        headers: dict[str, str],
        query: str = "",
    ) -> tuple[int, dict]:
        response = await self.client.post(
            f"/{operation}{query}", data=body, headers=headers
        )
        return response.status, orjson.loads(await response.read())

    async def call(self, operation: str, body: dict, **signing: Any) -> tuple:
        raw = orjson.dumps(body)
        query = signing.get("query", "")
        return await self.send(
            operation, raw, self.headers(operation, raw, **signing), query
        )


@pytest.fixture
def signed_factory(aiohttp_client, app_factory, credentials_file):
    async def build(**overrides: Any) -> Signed:
        settings = {"auth": "sigv4", "credentials_file": credentials_file}
        app = app_factory(**{**settings, **overrides})
        return Signed(await aiohttp_client(app), app)

    return build


@pytest.fixture
async def signed(signed_factory) -> Signed:
    return await signed_factory()


def create_body(account: str = ACCOUNT, name: str = "tj") -> dict:
    return {
        "AwsAccountId": account,
        "TuningJobName": name,
        "ObjectiveMetricName": "accuracy",
        "ObjectiveType": "Maximize",
    }


def list_body(account: str = ACCOUNT, name: str = "tj") -> dict:
    return {"AwsAccountId": account, "TuningJobName": name}


def assert_forbidden(status: int, payload: dict) -> None:
    assert status == 403, payload
    assert payload["__type"] == "AccessForbidden"


async def test_signed_requests_are_served(signed):
    status, _ = await signed.call("CreateTuningJob", create_body())
    assert status == 200
    status, page = await signed.call("ListTrainingJobsForTuningJob", list_body())
    assert (status, page) == (200, {"TrainingJobSummaries": []})


async def test_routes_other_than_operations_need_no_signature(
    aiohttp_client, app_factory, credentials_file
):
    async def probe(request):
        return web.Response(text="ok")

    app = app_factory(auth="sigv4", credentials_file=credentials_file)
    app.router.add_get("/probe", probe)
    client = await aiohttp_client(app)

    assert (await client.get("/probe")).status == 200
    response = await client.post("/CreateTuningJob", data=b"{}")
    assert response.status == 403


async def test_signed_query_string_is_canonicalised_sorted(signed):
    status, _ = await signed.call(
        "CreateTuningJob", create_body(), query="?b=2&a=1&c=x%20y%2Fz&a=0"
    )
    assert status == 200


async def test_any_region_unless_one_is_set(signed_factory):
    anywhere = await signed_factory()
    status, _ = await anywhere.call("CreateTuningJob", create_body(), region="xx-1")
    assert status == 200

    pinned = await signed_factory(region="eu-west-1")
    status, _ = await pinned.call(
        "CreateTuningJob", create_body(name="b"), region="eu-west-1"
    )
    assert status == 200
    assert_forbidden(
        *await pinned.call("CreateTuningJob", create_body(name="c"), region="xx-1")
    )


def _unsigned(signed: Signed, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json"}


def _malformed(signed: Signed, body: bytes) -> dict[str, str]:
    headers = signed.headers("CreateTuningJob", body)
    headers["Authorization"] = headers["Authorization"].replace(", ", " ")
    return headers


def _unknown_key(signed: Signed, body: bytes) -> dict[str, str]:
    return signed.headers("CreateTuningJob", body, key=("AKIDNOBODY", SECRET_KEY))


def _wrong_secret(signed: Signed, body: bytes) -> dict[str, str]:
    return signed.headers("CreateTuningJob", body, key=(KEY_ID, "not-the-secret"))


def _other_service(signed: Signed, body: bytes) -> dict[str, str]:
    return signed.headers("CreateTuningJob", body, service="sagemaker")


def _tampered_body(signed: Signed, body: bytes) -> dict[str, str]:
    return signed.headers("CreateTuningJob", body.replace(b"tj", b"tk"))


def _tampered_header(signed: Signed, body: bytes) -> dict[str, str]:
    headers = signed.headers("CreateTuningJob", body)
    headers["Content-Type"] = "application/x-amz-json-1.1"
    return headers


def _other_path(signed: Signed, body: bytes) -> dict[str, str]:
    return signed.headers("DeleteTuningJob", body)


def _unsigned_content_hash(signed: Signed, body: bytes) -> dict[str, str]:
    # The signature is right; only the unsigned hash header lies about the body.
    headers = signed.headers("CreateTuningJob", body)
    headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"other").hexdigest()
    return headers


def _host_not_signed(signed: Signed, body: bytes) -> dict[str, str]:
    headers = signed.headers("CreateTuningJob", body)
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=content-type;host;x-amz-date",
        "SignedHeaders=content-type;x-amz-date",
    )
    return headers


@pytest.mark.parametrize(
    "make_headers",
    [
        _unsigned,
        _malformed,
        _unknown_key,
        _wrong_secret,
        _other_service,
        _tampered_body,
        _tampered_header,
        _other_path,
        _unsigned_content_hash,
        _host_not_signed,
    ],
)
async def test_bad_signatures_are_refused_and_change_nothing(signed, make_headers):
    body = orjson.dumps(create_body())

    status, payload = await signed.send(
        "CreateTuningJob", body, make_headers(signed, body)
    )

    assert_forbidden(status, payload)
    status, payload = await signed.call("ListTrainingJobsForTuningJob", list_body())
    assert (status, payload["__type"]) == (404, "ResourceNotFound")


async def test_matching_content_hash_header_is_accepted(signed):
    body = orjson.dumps(create_body())
    digest = hashlib.sha256(body).hexdigest()
    headers = signed.headers(
        "CreateTuningJob", body, extra={"X-Amz-Content-SHA256": digest}
    )
    assert (await signed.send("CreateTuningJob", body, headers))[0] == 200


@pytest.mark.parametrize(
    "skew_s, allowed",
    [(-14 * 60, True), (14 * 60, True), (-16 * 60, False), (16 * 60, False)],
)
async def test_x_amz_date_must_be_within_15_minutes(signed, skew_s, allowed):
    signed.app[guards.GUARDS].clock = lambda: time.time() + skew_s

    status, payload = await signed.call("CreateTuningJob", create_body())

    if allowed:
        assert status == 200, payload
    else:
        assert_forbidden(status, payload)
        assert "expired" in payload["message"]


async def test_another_accounts_key_learns_nothing(signed):
    other_key = (OTHER_KEY_ID, OTHER_SECRET_KEY)
    status, _ = await signed.call(
        "CreateTuningJob", create_body(OTHER_ACCOUNT, "theirs"), key=other_key
    )
    assert status == 200

    answers = []
    for name in ("theirs", "missing"):
        for operation in ("DescribeTuningJob", "ListTrainingJobsForTuningJob"):
            status, payload = await signed.call(
                operation, list_body(OTHER_ACCOUNT, name)
            )
            assert_forbidden(status, payload)
            answers.append((operation, payload["message"]))

    assert answers[:2] == answers[2:]  # the same whether it exists or not
    status, _ = await signed.call(
        "DescribeTuningJob", list_body(OTHER_ACCOUNT, "theirs"), key=other_key
    )
    assert status == 200


async def test_only_the_accounts_own_keys_set_its_faults(signed_factory):
    signed = await signed_factory(fault_injection=True)
    body = {"AwsAccountId": OTHER_ACCOUNT, "Rules": []}

    assert_forbidden(*await signed.call("PutFaultInjection", body))
    assert_forbidden(*await signed.call("DeleteFaultInjection", body))
    status, _ = await signed.call(
        "PutFaultInjection", body, key=(OTHER_KEY_ID, OTHER_SECRET_KEY)
    )
    assert status == 200


async def test_sighup_reloads_keys_without_dropping_requests(
    signed, credentials_file, tmp_path
):
    await signed.call("CreateTuningJob", create_body())
    write_credentials(
        tmp_path / "credentials.json",
        (KEY_ID, SECRET_KEY, ACCOUNT),
        (NEW_KEY_ID, NEW_SECRET_KEY, ACCOUNT),
    )

    in_flight = [
        asyncio.ensure_future(signed.call("ListTrainingJobsForTuningJob", list_body()))
        for _ in range(20)
    ]
    os.kill(os.getpid(), signal.SIGHUP)
    new_key = (NEW_KEY_ID, NEW_SECRET_KEY)
    for _ in range(100):  # the handler runs on the loop's next turns
        status, _ = await signed.call(
            "ListTrainingJobsForTuningJob", list_body(), key=new_key
        )
        if status == 200:
            break
        await asyncio.sleep(0.01)

    assert status == 200
    assert [status for status, _ in await asyncio.gather(*in_flight)] == [200] * 20
    removed = (OTHER_KEY_ID, OTHER_SECRET_KEY)
    assert_forbidden(
        *await signed.call("CreateTuningJob", create_body(OTHER_ACCOUNT), key=removed)
    )


async def test_a_bad_file_on_reload_keeps_the_old_keys(
    signed, credentials_file, caplog
):
    with open(credentials_file, "wb") as broken:
        broken.write(b'{"Credentials": [')

    ring = signed.app[guards.GUARDS].verifier.ring
    with caplog.at_level(logging.ERROR, logger="service.auth"):
        assert ring.reload() is False

    assert "not reloaded" in caplog.text
    status, _ = await signed.call("CreateTuningJob", create_body())
    assert status == 200


async def test_secrets_never_reach_the_logs(signed_factory, caplog):
    signed = await signed_factory(fault_injection=True, throttle_rate=1000.0)
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        seen.append(str((await signed.call("CreateTuningJob", create_body()))[0]))
        raw = orjson.dumps(create_body(name="other"))
        headers = signed.headers("CreateTuningJob", raw)
        for header in (
            headers,
            _wrong_secret(signed, raw),
            _tampered_body(signed, raw),
        ):
            await signed.send("CreateTuningJob", raw, header)
            seen.append(header["Authorization"].rsplit("Signature=", 1)[1])
        await signed.call("CreateTuningJob", create_body(OTHER_ACCOUNT))
        signed.app[guards.GUARDS].verifier.ring.reload()

    # The server's records only: botocore's debug lines show what it signed.
    ours = [r for r in caplog.records if not r.name.startswith("botocore")]
    logged = "".join(r.getMessage() + repr(vars(r)) for r in ours)
    assert "request refused" in logged  # the refusals were logged
    for secret in (SECRET_KEY, OTHER_SECRET_KEY, *seen[1:]):
        assert secret not in logged
    assert repr(auth.AccessKey(SECRET_KEY, ACCOUNT)).count(SECRET_KEY) == 0


async def test_boto3_client_signs_what_the_server_accepts(signed_factory, monkeypatch):
    signed = await signed_factory(fault_injection=True)
    monkeypatch.setenv("AWS_DATA_PATH", str(model.data_path()))
    session = botocore.session.get_session()
    client = session.create_client(
        "sagemakerhpo",
        region_name="us-west-2",
        endpoint_url=str(signed.client.make_url("")),
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1}),
    )
    # botocore is synchronous: run it off the loop that serves it.
    answer = await asyncio.to_thread(
        client.create_tuning_job,
        AwsAccountId=ACCOUNT,
        TuningJobName="boto",
        ObjectiveMetricName="loss",
        ObjectiveType="Minimize",
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    listed = await asyncio.to_thread(client.list_tuning_jobs, AwsAccountId=ACCOUNT)
    assert [item["TuningJobName"] for item in listed["TuningJobSummaries"]] == ["boto"]
    described = await asyncio.to_thread(
        client.describe_tuning_job, AwsAccountId=ACCOUNT, TuningJobName="boto"
    )
    assert described["ObjectiveType"] == "Minimize"
    rules = [{"ErrorCode": "ServiceUnavailable", "Probability": 1.0}]
    await asyncio.to_thread(
        client.put_fault_injection, AwsAccountId=ACCOUNT, Rules=rules
    )
    faults = await asyncio.to_thread(client.get_fault_injection, AwsAccountId=ACCOUNT)
    assert faults["Rules"] == rules
    with pytest.raises(client.exceptions.ServiceUnavailable):
        await asyncio.to_thread(client.list_tuning_jobs, AwsAccountId=ACCOUNT)
    await asyncio.to_thread(client.delete_fault_injection, AwsAccountId=ACCOUNT)

    other = session.create_client(
        "sagemakerhpo",
        region_name="us-west-2",
        endpoint_url=str(signed.client.make_url("")),
        aws_access_key_id=KEY_ID,
        aws_secret_access_key="wrong",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(other.exceptions.ClientError) as refused:
        await asyncio.to_thread(
            other.delete_tuning_job, AwsAccountId=ACCOUNT, TuningJobName="boto"
        )
    assert refused.value.response["Error"]["Code"] == "AccessForbidden"


@pytest.mark.parametrize(
    "variables, reason",
    [
        ({"HPO_AUTH": "sigv4"}, "needs HPO_CREDENTIALS_FILE"),
        (
            {"HPO_AUTH": "sigv4", "HPO_CREDENTIALS_FILE": "/nonexistent/creds"},
            "cannot read /nonexistent/creds",
        ),
        ({"HPO_AUTH": "kerberos"}, "HPO_AUTH (--auth) must be one of none, sigv4"),
    ],
)
def test_settings_refuse_sigv4_without_readable_credentials(variables, reason):
    with pytest.raises(settings_module.SettingsError) as problem:
        settings_module.load([], variables)
    assert reason in str(problem.value)


def test_sigv4_without_a_file_fails_closed(app_factory):
    with pytest.raises(auth.CredentialsError):
        app_factory(auth="sigv4")


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"{", "is not valid JSON"),
        (b'{"Keys": []}', 'must hold {"Credentials": [...]}'),
        (b'{"Credentials": [{"AccessKeyId": "A"}]}', "needs the strings"),
        (
            b'{"Credentials": [{"AccessKeyId": "A", "SecretAccessKey": "s",'
            b' "AwsAccountId": "12"}]}',
            "AwsAccountId must be 12 digits",
        ),
    ],
)
def test_malformed_credentials_files_are_refused(tmp_path, content, reason):
    path = tmp_path / "credentials.json"
    path.write_bytes(content)
    with pytest.raises(auth.CredentialsError) as problem:
        auth.load_credentials(str(path))
    assert reason in str(problem.value)


def test_server_refuses_to_start_with_one_line_reason(tmp_path):
    environ = {
        **os.environ,
        "HPO_AUTH": "sigv4",
        "HPO_CREDENTIALS_FILE": str(tmp_path / "absent.json"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "service"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "HPO_CREDENTIALS_FILE" in done.stderr
    assert "cannot read" in done.stderr


def test_fault_injection_setting():
    assert settings_module.load([], {"HPO_FAULT_INJECTION": "on"}).fault_injection
    assert not settings_module.load([], {}).fault_injection


async def test_a_running_server_reloads_keys_on_sighup(tmp_path):
    path = write_credentials(tmp_path / "keys.json", (KEY_ID, SECRET_KEY, ACCOUNT))
    server, port = start_service(
        {
            "HPO_AUTH": "sigv4",
            "HPO_CREDENTIALS_FILE": path,
            "HPO_SHUTDOWN_GRACE_S": "0.1",
            "HPO_REDIS_URL": None,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/ListTuningJobs"
    body = orjson.dumps({"AwsAccountId": ACCOUNT})

    async def status_with(session: aiohttp.ClientSession, key: tuple) -> int:
        request = AWSRequest(method="POST", url=url, data=body)
        SigV4Auth(Credentials(*key), "sagemakerhpo", "us-east-1").add_auth(request)
        async with session.post(url, data=body, headers=dict(request.headers)) as r:
            return r.status

    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):  # until it listens
                try:
                    first = await status_with(session, (KEY_ID, SECRET_KEY))
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            assert first == 200
            assert await status_with(session, (NEW_KEY_ID, NEW_SECRET_KEY)) == 403

            write_credentials(
                tmp_path / "keys.json", (NEW_KEY_ID, NEW_SECRET_KEY, ACCOUNT)
            )
            server.send_signal(signal.SIGHUP)
            for _ in range(100):
                got = await status_with(session, (NEW_KEY_ID, NEW_SECRET_KEY))
                if got == 200:
                    break
                await asyncio.sleep(0.05)

            assert got == 200
            assert await status_with(session, (KEY_ID, SECRET_KEY)) == 403
            assert server.poll() is None  # still serving
    finally:
        server.terminate()
        server.wait(timeout=15)


async def test_signed_requests_are_throttled_as_the_keys_account(signed_factory):
    signed = await signed_factory(throttle_rate=1.0, throttle_burst=2)
    frozen_s = time.time()  # near the signatures' time, and still
    signed.app[guards.GUARDS].clock = lambda: frozen_s

    # Bodies naming no account still spend the signing account's tokens.
    answers = [(await signed.call("ListTuningJobs", {}))[0] for _ in range(3)]
    other = await signed.call(
        "ListTuningJobs", {}, key=(OTHER_KEY_ID, OTHER_SECRET_KEY)
    )

    assert answers == [400, 400, 401]
    assert other[0] == 400
