"""The Redis layout: what a page reads, what a job costs, where keys live."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis as sync_redis
from redis.asyncio import Redis
from redis.crc import key_slot

from service import storage

ACCOUNT = "123456789012"
CALLS_READING_RANGES = {"ZRANGE", "ZREVRANGE"}
# What redis-py sends when it opens a connection, not part of any page.
HANDSHAKE = {"HELLO", "CLIENT", "SELECT", "PING"}
CALLS_ALLOWED = {
    "EVALSHA", "EVAL", "HMGET", "ZSCORE", "ZRANK", "ZCOUNT", "ZCARD",
    "ZRANGE", "ZREVRANGE", "ZRANGEBYLEX", "ZREVRANGEBYLEX",
}  # fmt: skip


def _jobs(count: int, ties: int) -> list[storage.TrainingJob]:
    """`count` jobs over every status; the first `ties` share one value."""
    return [
        storage.TrainingJob(
            name=f"job-{i:05d}",
            status=i % storage.STATUS_COUNT,
            hyperparameters={"lr": "0.1", "depth": str(i % 7)},
            value=0.5 if i < ties else (i * 7919 % 1000) / 1000,
        )
        for i in range(count)
    ]


async def _fill(store: storage.Storage, count: int, ties: int) -> None:
    await store.create_tuning_job(ACCOUNT, "big", "loss", "Minimize")
    jobs = _jobs(count, ties)
    for first in range(0, count, 1000):
        await store.put_training_jobs(ACCOUNT, "big", jobs[first : first + 1000])


class Monitor:
    """Records every command the server runs, scripts' own calls included."""

    def __init__(self, url: str) -> None:
        self.client = sync_redis.Redis.from_url(url)
        self.commands: list[list[str]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.echo("monitor-stop")
        self._thread.join(10)
        self.client.close()

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for event in monitor.listen():
                words = [word.strip('"') for word in event["command"].split()]
                if words[:2] == ["ECHO", "monitor-stop"]:
                    return
                if words[0].upper() not in HANDSHAKE:
                    self.commands.append(words)


@pytest.mark.real_redis
@pytest.mark.parametrize("by_score", [False, True])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("statuses", [(1,), (0, 1, 2, 3, 4)])
async def test_a_page_reads_only_what_it_returns(
    redis_url, by_score, descending, statuses
):
    client = Redis.from_url(redis_url)
    await client.flushdb()
    store = storage.Storage(client)
    await _fill(store, count=5000, ties=600)
    limit = 11
    first = await store.list_page(
        ACCOUNT, "big", by_score=by_score, descending=descending,
        statuses=statuses, limit=limit,
    )  # fmt: skip
    name, record = first.rows[-1]
    score = float(storage.split_record(record)[2]) if by_score else None

    with Monitor(redis_url) as monitor:
        await store.list_page(
            ACCOUNT, "big", by_score=by_score, descending=descending,
            statuses=statuses, limit=limit, after=name.decode(), after_score=score,
        )  # fmt: skip
        await asyncio.sleep(0.05)  # let MONITOR deliver the script's calls

    await client.aclose()
    names = {words[0].upper() for words in monitor.commands}
    assert names <= CALLS_ALLOWED
    assert {"EVALSHA", "HMGET"} <= names  # the script's own calls were seen
    for words in monitor.commands:
        call = words[0].upper()
        if call in CALLS_READING_RANGES:
            start, stop = int(words[2]), int(words[3])
            assert 0 <= start <= stop and stop - start + 1 <= limit
        if call in ("ZRANGEBYLEX", "ZREVRANGEBYLEX"):
            assert words[-3:-1] == ["LIMIT", "0"]
            assert int(words[-1]) <= limit
        if call == "HMGET":
            assert len(words) - 2 <= limit
    # Bisecting 600 equal scores takes about log2(600) single-member reads.
    assert len(monitor.commands) < 20 * len(statuses) + 10


async def test_a_job_costs_two_memberships_and_one_field(redis):
    store = storage.Storage(redis)
    await _fill(store, count=300, ties=0)
    jobs = _jobs(300, 0)
    updated = [
        storage.TrainingJob(job.name, (job.status + 1) % 5, {}, value=None)
        for job in jobs[:100]
    ]
    await store.put_training_jobs(ACCOUNT, "big", updated)

    keys = storage._keys(ACCOUNT, "big")
    named = [await redis.zcard(key) for key in keys[2:7]]
    scored = [await redis.zcard(key) for key in keys[7:12]]
    assert await redis.hlen(keys[1]) == 300
    assert sum(named) == 300
    assert sum(scored) == 200  # the updated jobs lost their value


def test_every_key_of_a_tuning_job_shares_one_slot():
    keys = storage._keys(ACCOUNT, "a-tuning-job")
    assert len({key_slot(key.encode()) for key in keys}) == 1
    other = storage._keys(ACCOUNT, "another")
    assert key_slot(keys[0].encode()) != key_slot(other[0].encode())


def test_records_are_compact_and_in_wire_form():
    job = storage.TrainingJob("j", 2, {"lr": "0.1", "q": 'say "hi"'}, 3, 0.25)
    assert storage.record(job) == b'2|3|0.25|{"lr":"0.1","q":"say \\"hi\\""}'
    assert storage.split_record(storage.record(job)) == [
        b"2",
        b"3",
        b"0.25",
        b'{"lr":"0.1","q":"say \\"hi\\""}',
    ]
