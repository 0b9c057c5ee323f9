"""The real server process: settings at start, workers, logs and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from .conftest import ACCOUNT
from .redis_servers import RedisServer, free_port
from .tools import start_service, stderr_of

pytestmark = pytest.mark.real_redis

CREATE = {
    "AwsAccountId": ACCOUNT,
    "TuningJobName": "tj",
    "ObjectiveMetricName": "accuracy",
    "ObjectiveType": "Maximize",
}
LIST = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj"}


class Server:
    """A `python -m service` process on a free loopback port."""

    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        """Where the server listens."""
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(orjson.loads(line))

    def messages(self) -> list[str]:
        """The message of every line read so far."""
        return [line["message"] for line in self.lines]

    def wait_listening(self, count: int, timeout_s: float = 30.0) -> None:
        """Until `count` processes have logged that they listen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            listening = [m for m in self.messages() if m.startswith("listening")]
            if len(listening) >= count:
                return
            if self.process.poll() is not None:
                raise RuntimeError(stderr_of(self.process))
            time.sleep(0.05)
        raise RuntimeError(f"fewer than {count} processes listen: {self.lines}")

    def finish(self, timeout_s: float = 20.0) -> int:
        """Wait for the exit status, and for every line written before it."""
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout_s)
        return code


def start(env: dict[str, str]) -> Server:
    """Start the server and wait until it answers /healthz."""
    process, port = start_service(
        {"HPO_SHUTDOWN_GRACE_S": "0.2", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    server = Server(process, port)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(stderr_of(process))
        if _answers(port):
            return server
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not answer /healthz")


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own: the test pauses it."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers started by the test; killed if the test left one running."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


async def post(
    session: aiohttp.ClientSession, server: Server, operation: str, body: Any
) -> tuple[int, Any]:
    """POST one operation; its status and decoded body."""
    async with session.post(f"{server.url}/{operation}", json=body) as response:
        return response.status, await response.json()


def fresh_session() -> aiohttp.ClientSession:
    """A client that opens a new connection for every request."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def test_sigterm_lets_in_flight_requests_finish(redis_server, servers):
    server = start(
        {
            "HPO_REDIS_URL": redis_server.url,
            "HPO_REDIS_TIMEOUT_S": "10",
            "HPO_STORE_DEADLINE_S": "10",  # let the paused requests wait
            "HPO_SHUTDOWN_GRACE_S": "1",
        }
    )
    servers.append(server)
    admin = Redis.from_url(redis_server.url)
    async with fresh_session() as session:
        assert (await post(session, server, "CreateTuningJob", CREATE))[0] == 200

        # Every command waits while Redis is paused: the requests stay in flight.
        await admin.execute_command("CLIENT", "PAUSE", "4000", "ALL")
        paused_at = time.monotonic()
        pending = [
            asyncio.create_task(post(session, server, "ListTrainingJobsForTuningJob",
                                     LIST))
            for _ in range(5)
        ]  # fmt: skip
        await asyncio.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)

        async with session.get(f"{server.url}/readyz") as ready:
            assert ready.status == 503  # not ready at once, yet still accepting
        await asyncio.sleep(max(0.0, paused_at + 2.7 - time.monotonic()))
        assert server.process.poll() is None  # still draining the paused requests
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{server.url}/healthz")  # past the grace: refused

        answers = await asyncio.gather(*pending)

    assert [status for status, _ in answers] == [200] * 5
    assert all(body == {"TrainingJobSummaries": []} for _, body in answers)
    assert server.finish() == 0
    assert "stopped" in server.messages()
    await admin.aclose()


async def test_workers_share_the_port_and_metrics_add_up(redis_server, servers):
    server = start({"HPO_REDIS_URL": redis_server.url, "HPO_WORKERS": "2"})
    server.wait_listening(2)
    servers.append(server)
    requests = 24

    async with fresh_session() as session:
        await post(session, server, "CreateTuningJob", CREATE)
        for _ in range(requests):
            status, _ = await post(session, server, "ListTrainingJobsForTuningJob",
                                   LIST)  # fmt: skip
            assert status == 200
        pages = []
        for _ in range(4):
            async with session.get(f"{server.url}/metrics") as response:
                pages.append(await response.text())

    listed = (
        'hpo_requests_total{code="none",operation="ListTrainingJobsForTuningJob",'
        'status="200"} ' + f"{float(requests)}"
    )
    # Whichever worker answers, it reports what all of them served.
    assert all(listed in page for page in pages), pages[0]
    assert all("hpo_worker_processes 2.0" in page for page in pages)
    assert all("process_resident_memory_bytes" in page for page in pages)

    server.process.send_signal(signal.SIGTERM)
    assert server.finish() == 0, server.lines
    lines = server.lines
    pids = {line["pid"] for line in lines if line["logger"] == "service.access"}
    assert len(pids) == 2  # both workers answered requests
    listening = [line for line in lines if line["message"].startswith("listening")]
    assert len(listening) == 2


def test_workers_need_a_real_redis():
    env = {**os.environ, "HPO_WORKERS": "2", "HPO_PORT": str(free_port())}
    env.pop("HPO_REDIS_URL", None)

    done = subprocess.run(
        [sys.executable, "-m", "service"], env=env, capture_output=True, timeout=30
    )

    assert done.returncode == 2
    message = done.stderr.decode().strip()
    assert len(message.splitlines()) == 1
    assert "HPO_WORKERS" in message and "HPO_REDIS_URL" in message


def test_log_level_and_json_lines_on_stdout(redis_server, servers):
    quiet = start({"HPO_REDIS_URL": redis_server.url, "HPO_LOG_LEVEL": "WARNING"})
    chatty = start({"HPO_REDIS_URL": redis_server.url, "HPO_LOG_LEVEL": "INFO"})
    servers += [quiet, chatty]

    for server in (quiet, chatty):
        asyncio.run(_one_request(server))
        server.process.send_signal(signal.SIGTERM)
        assert server.finish() == 0

    quiet_lines, chatty_lines = quiet.lines, chatty.lines
    assert all(line["level"] in ("warning", "error") for line in quiet_lines)
    access = [line for line in chatty_lines if line["logger"] == "service.access"]
    assert [line["operation"] for line in access] == ["CreateTuningJob"]
    assert access[0]["account"] == ACCOUNT


async def _one_request(server: Server) -> None:
    async with fresh_session() as session:
        assert (await post(session, server, "CreateTuningJob", CREATE))[0] == 200


def test_a_worker_dying_stops_the_server_with_status_1(redis_server, servers):
    server = start({"HPO_REDIS_URL": redis_server.url, "HPO_WORKERS": "2"})
    servers.append(server)
    server.wait_listening(2)
    workers = [
        line["pid"] for line in server.lines if line["message"].startswith("listening")
    ]

    os.kill(workers[0], signal.SIGKILL)

    assert server.finish() == 1
    assert not os.path.exists(f"/proc/{workers[1]}")  # the other one was stopped
    assert any("exited with status -9" in m for m in server.messages())


def test_sighup_reaches_every_worker(redis_server, servers, tmp_path):
    credentials = tmp_path / "credentials.json"
    key = {"AccessKeyId": "AKIDTEST", "SecretAccessKey": "s", "AwsAccountId": ACCOUNT}
    credentials.write_bytes(orjson.dumps({"Credentials": [key]}))
    server = start(
        {
            "HPO_REDIS_URL": redis_server.url,
            "HPO_WORKERS": "2",
            "HPO_AUTH": "sigv4",
            "HPO_CREDENTIALS_FILE": str(credentials),
        }
    )
    servers.append(server)
    server.wait_listening(2)

    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        reloaded = [
            m for m in server.messages() if m.startswith("credentials reloaded")
        ]
        if len(reloaded) == 2:
            break
        time.sleep(0.05)

    assert len(reloaded) == 2
    assert server.process.poll() is None  # SIGHUP does not end the supervisor
    server.process.send_signal(signal.SIGTERM)
    assert server.finish() == 0
