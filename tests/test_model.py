"""Random puts, updates, deletes and walks, checked against an in-memory model."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from service.app import create_app

from .conftest import ACCOUNT, Api, create_tuning_job, make_settings

STATUSES = ["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
METRIC = "FinalObjectiveMetricValue"

# Few names and values, so that collisions, ties and moves are common.
# Hyphens, digits and both cases: byte order differs from most locales' order.
names = st.sampled_from(
    ["a", "B", "0", "a-B", "aB", "a-9", "a--z", "z", "B9", "0-a", "Ba", "a9"]
)
values = st.sampled_from([-2.5, -0.0, 0.0, 0.5, 1.0, 1e300])
jobs = st.fixed_dictionaries(
    {
        "TrainingJobName": names,
        "TrainingJobStatus": st.sampled_from(STATUSES),
        "RetriedAttempt": st.integers(0, 3),
        "HyperParameters": st.dictionaries(
            st.sampled_from(["lr", "depth", "é"]), st.sampled_from(["1", "x|y"])
        ),
    },
    optional={"FinalObjectiveMetricValue": values},
)
batches = st.lists(
    jobs, min_size=1, max_size=8, unique_by=lambda j: j["TrainingJobName"]
)
queries = st.fixed_dictionaries(
    {"SortOrder": st.sampled_from(["Ascending", "Descending"])},
    optional={
        "SortBy": st.just(METRIC),
        "TrainingJobStatusEquals": st.sampled_from(STATUSES),
    },
)
steps = st.one_of(
    st.tuples(st.just("put"), batches),
    st.tuples(st.just("recreate")),
    st.tuples(
        st.just("walk"),
        queries,
        st.integers(1, 4),
        st.lists(batches, max_size=4),
    ),
)


class Model:
    """What the service should hold: name -> the job as last put."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}

    def put(self, batch: list[dict]) -> None:
        for item in batch:
            self.jobs[item["TrainingJobName"]] = item

    def key(self, item: dict, query: dict) -> tuple:
        name = item["TrainingJobName"].encode()
        if "SortBy" in query:
            return (item["FinalObjectiveMetricValue"], name)
        return (name,)

    def listed(self, query: dict) -> list[dict]:
        """Every job the query lists, in its order."""
        chosen = [item for item in self.jobs.values() if self.matches(item, query)]
        descending = query["SortOrder"] == "Descending"
        return sorted(chosen, key=lambda i: self.key(i, query), reverse=descending)

    def matches(self, item: dict, query: dict) -> bool:
        status = query.get("TrainingJobStatusEquals")
        if status and item["TrainingJobStatus"] != status:
            return False
        return "SortBy" not in query or "FinalObjectiveMetricValue" in item

    @staticmethod
    def summary(item: dict) -> dict:
        shown = {
            "TrainingJobName": item["TrainingJobName"],
            "TrainingJobStatus": item["TrainingJobStatus"],
            "HyperParameters": item["HyperParameters"],
            "RetriedAttempt": item["RetriedAttempt"],
        }
        if "FinalObjectiveMetricValue" in item:
            shown["FinalTuningJobObjectiveMetric"] = {
                "MetricName": "m",
                "Type": "Minimize",
                "Value": item["FinalObjectiveMetricValue"],
            }
        return shown


def _placement(item: dict) -> tuple:
    """What decides where a job is listed: its status and its value."""
    return item["TrainingJobStatus"], item.get("FinalObjectiveMetricValue")


async def _create(api: Api) -> None:
    await create_tuning_job(api, metric="m", objective="Minimize")


async def _put(api: Api, model: Model, batch: list[dict]) -> None:
    await api.ok("PutTrainingJobs", AwsAccountId=ACCOUNT, TuningJobName="tj",
                 TrainingJobs=batch)  # fmt: skip
    model.put(batch)


async def _walk(api, model, query, page_size, writes) -> None:
    """Walk every page, writing between pages, and check the walk's promises."""
    before = dict(model.jobs)
    pending = list(writes)
    seen: list[dict] = []
    token = None
    while True:
        body = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj", **query}
        body["MaxResults"] = page_size
        if token:
            body["NextToken"] = token
        page = await api.ok("ListTrainingJobsForTuningJob", **body)
        summaries = page["TrainingJobSummaries"]
        assert len(summaries) <= page_size
        for summary in summaries:  # each is the job as stored at that moment
            assert summary == Model.summary(model.jobs[summary["TrainingJobName"]])
        seen += summaries
        token = page.get("NextToken")
        if token is None:
            break
        assert summaries, "a page that promises more must not be empty"
        if pending:
            await _put(api, model, pending.pop(0))

    keys = [model.key(_as_item(s), query) for s in seen]
    descending = query["SortOrder"] == "Descending"
    assert keys == sorted(set(keys), reverse=descending)  # strictly in order

    if not writes:
        assert seen == [Model.summary(i) for i in model.listed(query)]
        return
    stable = [
        name
        for name, item in before.items()
        if model.matches(item, query)
        and _placement(model.jobs[name]) == _placement(item)
    ]
    returned = [s["TrainingJobName"] for s in seen]
    for name in stable:
        assert returned.count(name) == 1, name


def _as_item(summary: dict) -> dict:
    item = {"TrainingJobName": summary["TrainingJobName"]}
    metric = summary.get("FinalTuningJobObjectiveMetric")
    if metric:
        item["FinalObjectiveMetricValue"] = metric["Value"]
    return item


async def _scenario(redis: Redis, plan: list) -> None:
    app = create_app(make_settings(), redis=redis)
    async with TestClient(TestServer(app)) as client:
        api = Api(client)
        model = Model()
        await _create(api)
        for step in plan:
            if step[0] == "put":
                await _put(api, model, step[1])
            elif step[0] == "recreate":
                await api.ok(
                    "DeleteTuningJob", AwsAccountId=ACCOUNT, TuningJobName="tj"
                )
                model = Model()
                await _create(api)
            else:
                await _walk(api, model, *step[1:])
        for query in ({"SortOrder": "Ascending"}, {"SortOrder": "Descending"}):
            await _walk(api, model, {**query, "SortBy": METRIC}, 3, [])
            await _walk(api, model, query, 2, [])


async def _run(url: str | None, plan: list) -> None:
    if url is None:
        redis = fakeredis.FakeAsyncRedis()
    else:
        redis = Redis.from_url(url)
        await redis.flushdb()
    try:
        await _scenario(redis, plan)
    finally:
        await redis.aclose()


@pytest.mark.parametrize(
    "backend", ["fake", pytest.param("real", marks=pytest.mark.real_redis)]
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=st.lists(steps, max_size=10))
def test_service_matches_the_model(backend, redis_url, plan):
    asyncio.run(_run(None if backend == "fake" else redis_url, plan))
