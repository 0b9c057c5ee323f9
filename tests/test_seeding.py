"""`seed` and `import`: what they write lists back as the API would list it."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from service import cli, schemas, seeding, storage
from service.app import create_app

from .conftest import ACCOUNT, Api, make_settings
from .test_handlers import walk

METRIC = "FinalObjectiveMetricValue"


def seed_args(*words: str) -> Any:
    """The `seed` command's flags, as it parses them."""
    return seeding.seed_parser().parse_args(["--quiet", *words])


def wire(job: storage.TrainingJob, metric: str, objective: str) -> dict:
    """The summary the API must answer for a seeded job."""
    summary: dict[str, Any] = {
        "TrainingJobName": job.name,
        "TrainingJobStatus": schemas.STATUSES[job.status],
        "HyperParameters": job.hyperparameters,
        "RetriedAttempt": job.retried_attempt,
    }
    if job.value is not None:
        summary["FinalTuningJobObjectiveMetric"] = {
            "MetricName": metric,
            "Type": objective,
            "Value": job.value,
        }
    return summary


def metric_then_name(summary: dict) -> tuple:
    """The sort key of the metric order."""
    value = summary["FinalTuningJobObjectiveMetric"]["Value"]
    return value, summary["TrainingJobName"]


async def dump(redis: Redis, account: str, tuning_job: str) -> dict:
    """Every key of a tuning job, as plain values, without its tag."""
    tag = f"hpo:{{{account}:{tuning_job}}}"
    found = {}
    for key in await redis.keys(f"{tag}:*"):
        short = key.decode().removeprefix(tag)
        if await redis.type(key) == b"zset":
            found[short] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            found[short] = await redis.hgetall(key)
    return found


async def test_seeded_jobs_list_back_in_every_order(api, redis):
    args = seed_args("--tuning-job", "seeded", "--jobs", "250", "--batch-size", "60")
    line = await seeding.seed_jobs(storage.Storage(redis), args)
    assert line.startswith(f"seeded 250 training jobs into {ACCOUNT}/seeded in ")

    expected = [
        wire(job, "validation:accuracy", "Maximize")
        for job in seeding.synthetic_jobs(
            250,
            status_mix=seeding.parse_status_mix(seeding.DEFAULT_STATUS_MIX),
            distribution=seeding.parse_distribution(seeding.DEFAULT_DISTRIBUTION),
            hyperparameters=2,
            seed=0,
        )
    ]
    by_name, _ = await walk(api, "seeded")
    assert by_name == sorted(expected, key=lambda s: s["TrainingJobName"])

    valued = [s for s in expected if "FinalTuningJobObjectiveMetric" in s]
    by_metric, _ = await walk(api, "seeded", SortBy=METRIC, SortOrder="Descending")
    assert by_metric == sorted(
        valued,
        key=lambda s: (
            s["FinalTuningJobObjectiveMetric"]["Value"],
            s["TrainingJobName"],
        ),
        reverse=True,
    )
    stopped, _ = await walk(api, "seeded", TrainingJobStatusEquals="Stopped")
    assert stopped == [s for s in by_name if s["TrainingJobStatus"] == "Stopped"]
    assert stopped


async def test_seeded_records_are_what_put_training_jobs_stores(api, redis, tuning_job):
    args = seed_args(
        "--tuning-job", "seeded", "--jobs", "120", "--hyperparameters", "7"
    )
    await seeding.seed_jobs(storage.Storage(redis), args)
    await tuning_job("viaapi", metric="validation:accuracy", objective="Maximize")
    seeded = await walk(api, "seeded")

    items = []
    for summary in seeded[0]:
        item = {key: summary[key] for key in ("TrainingJobName", "TrainingJobStatus")}
        item["HyperParameters"] = summary["HyperParameters"]
        item["RetriedAttempt"] = summary["RetriedAttempt"]
        if "FinalTuningJobObjectiveMetric" in summary:
            value = summary["FinalTuningJobObjectiveMetric"]["Value"]
            item["FinalObjectiveMetricValue"] = value
        items.append(item)
    await api.ok(
        "PutTrainingJobs",
        AwsAccountId=ACCOUNT,
        TuningJobName="viaapi",
        TrainingJobs=items,
    )

    assert await dump(redis, ACCOUNT, "seeded") == await dump(redis, ACCOUNT, "viaapi")


@pytest.mark.parametrize(
    ("flag", "value", "complaint"),
    [
        ("--status-mix", "Done=1", "unknown status 'Done'"),
        ("--status-mix", "Completed=x", "is not STATUS=WEIGHT"),
        ("--status-mix", "Completed=0", "must not all be zero"),
        ("--status-mix", "Completed=-1", "must be >= 0"),
        ("--metric-distribution", "beta:1,2", "must be uniform:LOW,HIGH"),
        ("--metric-distribution", "normal:1", "must be uniform:LOW,HIGH"),
        ("--metric-distribution", "uniform:a,b", "bad numbers"),
        ("--metric-distribution", "exponential:0", "mean must be above 0"),
        ("--metric-distribution", "normal:0,inf", "must be finite"),
        ("--tuning-job", "bad_name", "failed to satisfy constraint"),
    ],
)
async def test_seed_refuses_bad_options(redis, flag, value, complaint):
    words = ["--tuning-job", "tj", "--jobs", "3", flag, value]
    with pytest.raises(seeding.CommandError, match=complaint):
        await seeding.seed_jobs(storage.Storage(redis), seed_args(*words))
    assert await redis.keys("*") == []


def test_seed_status_mix_and_distribution_shape_the_jobs():
    jobs = list(
        seeding.synthetic_jobs(
            2000,
            status_mix=seeding.parse_status_mix("Completed=3,Failed=1"),
            distribution=seeding.parse_distribution("normal:10,0.5"),
            hyperparameters=8,
            seed=4,
        )
    )
    completed = [job for job in jobs if job.status == 1]
    assert {job.status for job in jobs} == {1, 2}
    assert 0.7 < len(completed) / len(jobs) < 0.8
    assert all(job.value is None for job in jobs if job.status == 2)
    mean = sum(job.value for job in completed) / len(completed)
    assert math.isclose(mean, 10, abs_tol=0.1)
    assert all(len(job.hyperparameters) == 8 for job in jobs)
    assert len({job.name for job in jobs}) == 2000


async def test_put_path_matches_a_model_under_moves_and_repeats(redis):
    """Batches of new, moved and repeated names leave exactly the model's state."""
    store = storage.Storage(redis)
    await store.create_tuning_job(ACCOUNT, "tj", "m", "Minimize")
    rng = random.Random(7)
    model: dict[str, storage.TrainingJob] = {}
    for _ in range(40):
        batch = [
            storage.TrainingJob(
                name=rng.choice(["a", "B", "c-1", "c1", "d", "e9", "Z"]),
                status=rng.randrange(5),
                hyperparameters={"k": rng.choice(["1", "x|y"])},
                retried_attempt=rng.randrange(3),
                value=rng.choice([None, -1.5, 0.0, 0.25, 1e300]),
            )
            for _ in range(rng.randint(1, 6))
        ]
        assert await store.put_training_jobs(ACCOUNT, "tj", batch) == len(batch)
        model.update((job.name, job) for job in batch)

        expected: dict[str, Any] = {
            ":def": {b"metric": b"m", b"type": b"Minimize"},
            ":rec": {n.encode(): storage.record(j) for n, j in model.items()},
        }
        for code in range(5):
            members = [j for j in model.values() if j.status == code]
            named = sorted((j.name.encode(), 0.0) for j in members)
            scored = sorted(
                ((j.name.encode(), j.value) for j in members if j.value is not None),
                key=lambda pair: (pair[1], pair[0]),
            )
            if named:
                expected[f":n:{code}"] = named
            if scored:
                expected[f":s:{code}"] = scored
        assert await dump(redis, ACCOUNT, "tj") == expected


async def test_write_batches_keeps_several_in_flight(redis):
    store = storage.Storage(redis)
    target = seeding.Target(ACCOUNT, "tj", "m", "Maximize")
    await seeding.prepare(store, target)
    most = 0
    inside = 0
    put = store.put_training_jobs

    async def counting(*args: Any) -> int:
        nonlocal most, inside
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0)
        try:
            return await put(*args)
        finally:
            inside -= 1

    store.put_training_jobs = counting  # type: ignore[method-assign]
    jobs = [storage.TrainingJob(f"j{i}", 0, {}) for i in range(50)]
    with seeding.tqdm(disable=True) as progress:
        written = await seeding.write_batches(
            store, target, seeding.chunked(jobs, 5), progress, in_flight=3
        )
    assert written == 50
    assert most == 3


# The commands, end to end, against a real Redis.


@pytest.fixture
async def real(redis_url: str, aiohttp_client: Any) -> AsyncIterator[tuple]:
    """An empty real Redis and an API over it."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    api = Api(await aiohttp_client(create_app(make_settings(), redis=client)))
    yield api, client
    await client.aclose()


async def command(*words: str) -> int:
    """Run `python -m service <words>` as the shell would, off the event loop."""
    return await asyncio.to_thread(cli.main, list(words))


@pytest.mark.real_redis
async def test_seed_command_writes_into_the_configured_redis(real, redis_url, capsys):
    api, _ = real
    status = await command(
        "seed", "--redis-url", redis_url, "--tuning-job", "cmd", "--jobs", "2500",
        "--status-mix", "Completed=1", "--metric-name", "loss",
        "--objective-type", "Minimize", "--seed", "3",
    )  # fmt: skip

    assert status == 0
    out = capsys.readouterr().out
    assert "seeded 2500 training jobs into 123456789012/cmd in " in out
    assert out.rstrip().endswith("jobs/s)")
    found, pages = await walk(api, "cmd", SortBy=METRIC)
    assert len(found) == 2500 and pages == 25
    values = [s["FinalTuningJobObjectiveMetric"]["Value"] for s in found]
    assert values == sorted(values)
    assert found[0]["FinalTuningJobObjectiveMetric"]["MetricName"] == "loss"


@pytest.mark.real_redis
def test_seed_command_refuses_the_embedded_store(capsys, monkeypatch):
    monkeypatch.delenv("HPO_REDIS_URL", raising=False)
    assert run("seed", "--tuning-job", "tj", "--jobs", "1") == 2
    assert "set HPO_REDIS_URL or --redis-url" in capsys.readouterr().err


def run(*words: str) -> int:
    return cli.main(list(words))


def jsonl(tmp_path: Any, *items: Any) -> str:
    """A JSON lines file of `items`; bytes are written as they are."""
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(
        b"\n".join(
            item if isinstance(item, bytes) else orjson.dumps(item) for item in items
        )
        + b"\n"
    )
    return str(path)


HEADER = {
    "AwsAccountId": ACCOUNT,
    "TuningJobName": "imported",
    "ObjectiveMetricName": "validation:f1",
    "ObjectiveType": "Maximize",
}


@pytest.mark.real_redis
async def test_import_writes_good_lines_and_reports_bad_ones_by_number(
    real, redis_url, tmp_path, capsys
):
    api, _ = real
    good = [
        {"TrainingJobName": f"j{i:04d}", "TrainingJobStatus": "Completed",
         "FinalObjectiveMetricValue": i / 7, "HyperParameters": {"lr": str(i)}}
        for i in range(2300)
    ]  # fmt: skip
    path = jsonl(
        tmp_path,
        HEADER,
        *good[:1000],
        {"TrainingJobName": "bad_name", "TrainingJobStatus": "Completed"},
        b"{not json",
        *good[1000:],
        b"",
        {"TrainingJobName": "x", "TrainingJobStatus": "Done"},
        {**good[5], "RetriedAttempt": 1},
    )

    status = await command("import", path, "--redis-url", redis_url, "--quiet")

    assert status == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"{path}:1002: 1 validation error detected: Value 'bad_name' at "
        "'trainingJobName' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
        f"{path}:1003: not valid JSON",
        f"{path}:2305: 1 validation error detected: Value 'Done' at "
        "'trainingJobStatus' failed to satisfy constraint: Member must satisfy "
        "enum value set: [InProgress, Completed, Failed, Stopping, Stopped]",
        f"{path}:2306: training job named already on line 7",
    ]
    assert "imported 2300 training jobs into 123456789012/imported" in captured.out
    found, _ = await walk(api, "imported")
    assert [s["TrainingJobName"] for s in found] == [j["TrainingJobName"] for j in good]
    assert found[5]["RetriedAttempt"] == 0
    assert found[6]["FinalTuningJobObjectiveMetric"] == {
        "MetricName": "validation:f1", "Type": "Maximize", "Value": 6 / 7,
    }  # fmt: skip


@pytest.mark.real_redis
async def test_import_takes_the_tuning_job_from_flags(real, redis_url, tmp_path):
    api, _ = real
    path = jsonl(tmp_path, {"TrainingJobName": "a", "TrainingJobStatus": "Failed"})

    status = await command(
        "import", path, "--redis-url", redis_url, "--quiet", "--account",
        "210987654321", "--tuning-job", "flagged", "--metric-name", "m",
        "--objective-type", "Minimize",
    )  # fmt: skip

    assert status == 0
    page = await api.ok(
        "ListTrainingJobsForTuningJob",
        AwsAccountId="210987654321",
        TuningJobName="flagged",
    )
    assert page["TrainingJobSummaries"] == [
        {"TrainingJobName": "a", "TrainingJobStatus": "Failed",
         "HyperParameters": {}, "RetriedAttempt": 0}
    ]  # fmt: skip


@pytest.mark.real_redis
@pytest.mark.parametrize(
    ("header", "flags", "complaint"),
    [
        (None, [], "give --tuning-job or a header line"),
        (None, ["--tuning-job", "missing"], "does not exist: give --metric-name"),
        ({**HEADER, "ObjectiveType": "Best"}, [], "at 'objectiveType'"),
        (HEADER, ["--objective-type", "Minimize"], "exists with another objective"),
    ],
)
async def test_import_refuses_an_unusable_tuning_job(
    real, redis_url, tmp_path, capsys, header, flags, complaint
):
    _, client = real
    await storage.Storage(client).create_tuning_job(
        ACCOUNT, "imported", "validation:f1", "Maximize"
    )
    item = {"TrainingJobName": "a", "TrainingJobStatus": "Failed"}
    path = jsonl(tmp_path, *([header] if header else []), item)

    status = await command("import", path, "--redis-url", redis_url, *flags)

    assert status == 1
    assert complaint in capsys.readouterr().err
    rec = await client.hgetall(f"hpo:{{{ACCOUNT}:imported}}:rec")
    assert rec == {}
