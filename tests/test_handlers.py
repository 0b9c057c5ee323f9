"""The operations' behaviour: order, filters, paging, upserts, isolation."""

from __future__ import annotations

import random

import pytest

from .conftest import ACCOUNT, OTHER_ACCOUNT

STATUSES = ["InProgress", "Completed", "Failed", "Stopping", "Stopped"]


def job(name, status="Completed", value=None, **extra):
    item = {"TrainingJobName": name, "TrainingJobStatus": status, **extra}
    if value is not None:
        item["FinalObjectiveMetricValue"] = value
    return item


async def put(api, jobs, tuning_job="tj", account=ACCOUNT):
    return await api.ok(
        "PutTrainingJobs",
        AwsAccountId=account,
        TuningJobName=tuning_job,
        TrainingJobs=jobs,
    )


async def walk(api, tuning_job="tj", account=ACCOUNT, page_size=100, **query):
    """Every summary of a walk, and the number of pages it took."""
    seen, token, pages = [], None, 0
    while True:
        body = {"AwsAccountId": account, "TuningJobName": tuning_job, **query}
        body["MaxResults"] = page_size
        if token:
            body["NextToken"] = token
        page = await api.ok("ListTrainingJobsForTuningJob", **body)
        pages += 1
        seen += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if token is None:
            return seen, pages
        assert token, "an empty NextToken must be left out, not sent"


def names(summaries):
    return [summary["TrainingJobName"] for summary in summaries]


async def test_list_defaults_to_every_job_by_name_ascending(api, tuning_job):
    await tuning_job()
    await put(api, [job("b", value=1.0), job("a", "Failed"), job("C", value=2.0)])

    page = await api.ok(
        "ListTrainingJobsForTuningJob", AwsAccountId=ACCOUNT, TuningJobName="tj"
    )

    assert names(page["TrainingJobSummaries"]) == ["C", "a", "b"]  # byte order
    assert "NextToken" not in page


async def test_list_returns_the_whole_summary_shape(api, tuning_job):
    await tuning_job(metric="validation:loss", objective="Minimize")
    await put(
        api,
        [
            job("with", value=0.25, HyperParameters={"lr": "0.1"}, RetriedAttempt=2),
            job("without", "InProgress"),
        ],
    )

    page = await api.ok(
        "ListTrainingJobsForTuningJob", AwsAccountId=ACCOUNT, TuningJobName="tj"
    )

    assert page["TrainingJobSummaries"] == [
        {
            "TrainingJobName": "with",
            "TrainingJobStatus": "Completed",
            "HyperParameters": {"lr": "0.1"},
            "RetriedAttempt": 2,
            "FinalTuningJobObjectiveMetric": {
                "MetricName": "validation:loss",
                "Type": "Minimize",
                "Value": 0.25,
            },
        },
        {
            "TrainingJobName": "without",
            "TrainingJobStatus": "InProgress",
            "HyperParameters": {},
            "RetriedAttempt": 0,
        },
    ]


async def test_list_by_name_descending(api, tuning_job):
    await tuning_job()
    await put(api, [job(n, random.choice(STATUSES)) for n in ["a", "b-1", "b1", "B"]])

    found, _ = await walk(api, page_size=1, SortOrder="Descending")

    assert names(found) == ["b1", "b-1", "a", "B"]


@pytest.mark.parametrize("order", ["Ascending", "Descending"])
async def test_list_by_metric_skips_jobs_without_value_and_breaks_ties_by_name(
    api, tuning_job, order
):
    await tuning_job()
    await put(
        api,
        [
            job("d", value=0.5),
            job("a", "Stopped", value=0.5),
            job("c", "Failed", value=-1.0),
            job("b", "InProgress"),
            job("e", value=2.0),
        ],
    )

    found, _ = await walk(api, page_size=2, SortBy="FinalObjectiveMetricValue",
                          SortOrder=order)  # fmt: skip

    expected = ["c", "a", "d", "e"]
    if order == "Descending":
        expected.reverse()
    assert names(found) == expected


@pytest.mark.parametrize("status", STATUSES)
async def test_status_filter_keeps_order(api, tuning_job, status):
    await tuning_job()
    rng = random.Random(7)
    jobs = [job(f"j{i:03d}", rng.choice(STATUSES), rng.random()) for i in range(60)]
    await put(api, jobs)

    by_name, _ = await walk(api, page_size=7, TrainingJobStatusEquals=status)
    by_value, _ = await walk(
        api,
        page_size=7,
        TrainingJobStatusEquals=status,
        SortBy="FinalObjectiveMetricValue",
        SortOrder="Descending",
    )

    mine = [j for j in jobs if j["TrainingJobStatus"] == status]
    assert names(by_name) == sorted(j["TrainingJobName"] for j in mine)
    ranked = sorted(mine, key=lambda j: j["FinalObjectiveMetricValue"], reverse=True)
    assert names(by_value) == names(ranked)


async def test_next_token_only_while_more_jobs_follow(api, tuning_job):
    await tuning_job()
    await put(api, [job(f"j{i}") for i in range(6)])

    found, pages = await walk(api, page_size=3)
    assert (len(found), pages) == (6, 2)

    found, pages = await walk(api, page_size=5)
    assert (len(found), pages) == (6, 2)


async def test_max_results_defaults_to_ten_and_may_change_between_pages(
    api, tuning_job
):
    await tuning_job()
    await put(api, [job(f"j{i:02d}") for i in range(25)])
    query = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj"}

    first = await api.ok("ListTrainingJobsForTuningJob", **query)
    second = await api.ok(
        "ListTrainingJobsForTuningJob",
        **query,
        MaxResults=15,
        NextToken=first["NextToken"],
    )

    assert len(first["TrainingJobSummaries"]) == 10
    assert names(second["TrainingJobSummaries"]) == [f"j{i:02d}" for i in range(10, 25)]
    assert "NextToken" not in second


async def test_empty_tuning_job_lists_nothing(api, tuning_job):
    await tuning_job()
    page = await api.ok(
        "ListTrainingJobsForTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        SortBy="FinalObjectiveMetricValue",
    )
    assert page == {"TrainingJobSummaries": []}


async def test_upsert_moves_a_job_between_orders_and_filters(api, tuning_job):
    await tuning_job()
    await put(api, [job("a", "InProgress"), job("b", value=1.0)])
    await put(api, [job("a", "Completed", value=5.0, HyperParameters={"x": "1"})])
    await put(api, [job("b", "Failed")])

    completed, _ = await walk(api, TrainingJobStatusEquals="Completed")
    ranked, _ = await walk(api, SortBy="FinalObjectiveMetricValue")
    in_progress, _ = await walk(api, TrainingJobStatusEquals="InProgress")
    failed, _ = await walk(api, TrainingJobStatusEquals="Failed")

    assert names(completed) == ["a"]
    assert completed[0]["HyperParameters"] == {"x": "1"}
    assert names(ranked) == ["a"]
    assert in_progress == []
    assert names(failed) == ["b"]
    assert "FinalTuningJobObjectiveMetric" not in failed[0]


async def test_put_answers_the_count(api, tuning_job):
    await tuning_job()
    answer = await put(api, [job("a"), job("b")])
    assert answer == {"TrainingJobCount": 2}


async def test_put_with_one_bad_item_writes_nothing(api, tuning_job):
    await tuning_job()
    await put(api, [job("keep", value=1.0)])

    await api.error(
        "PutTrainingJobs",
        "ValidationError",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        TrainingJobs=[job("new"), job("keep", "Failed"), job("bad", "Unknown")],
    )
    await api.error(
        "PutTrainingJobs",
        "ValidationError",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        TrainingJobs=[job("twice"), job("twice", "Failed")],
    )

    found, _ = await walk(api)
    assert found == [
        {
            "TrainingJobName": "keep",
            "TrainingJobStatus": "Completed",
            "HyperParameters": {},
            "RetriedAttempt": 0,
            "FinalTuningJobObjectiveMetric": {
                "MetricName": "accuracy",
                "Type": "Maximize",
                "Value": 1.0,
            },
        }
    ]


async def test_create_is_idempotent_for_the_same_objective(api, tuning_job):
    await tuning_job()
    await put(api, [job("a")])
    await tuning_job()

    message = await api.error(
        "CreateTuningJob",
        "ResourceInUse",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        ObjectiveMetricName="accuracy",
        ObjectiveType="Minimize",
    )

    assert "tj" in message
    found, _ = await walk(api)
    assert names(found) == ["a"]


async def test_create_conflict_answers_409(api, tuning_job):
    await tuning_job()
    status, _, _ = await api.call(
        "CreateTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        ObjectiveMetricName="loss",
        ObjectiveType="Maximize",
    )
    assert status == 409


async def test_delete_removes_the_tuning_job_and_its_jobs(api, tuning_job, redis):
    await tuning_job()
    await put(api, [job("a", value=1.0), job("b", "Failed")])

    assert (
        await api.ok("DeleteTuningJob", AwsAccountId=ACCOUNT, TuningJobName="tj") == {}
    )

    await api.error(
        "ListTrainingJobsForTuningJob",
        "ResourceNotFound",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
    )
    assert await redis.dbsize() == 0
    await api.error(
        "DeleteTuningJob", "ResourceNotFound", AwsAccountId=ACCOUNT, TuningJobName="tj"
    )


@pytest.mark.parametrize(
    "operation, extra",
    [
        ("ListTrainingJobsForTuningJob", {}),
        ("PutTrainingJobs", {"TrainingJobs": [job("a")]}),
        ("DeleteTuningJob", {}),
    ],
)
async def test_unknown_tuning_job_is_not_found(api, operation, extra):
    status, payload, _ = await api.call(
        operation, AwsAccountId=ACCOUNT, TuningJobName="missing", **extra
    )
    assert status == 404
    assert payload["__type"] == "ResourceNotFound"
    assert "missing" in payload["message"]


async def test_accounts_never_see_each_other(api, tuning_job, redis):
    await tuning_job()
    await put(api, [job("mine")])

    for operation, extra in [
        ("ListTrainingJobsForTuningJob", {}),
        ("PutTrainingJobs", {"TrainingJobs": [job("theirs")]}),
        ("DeleteTuningJob", {}),
    ]:
        await api.error(
            operation,
            "ResourceNotFound",
            AwsAccountId=OTHER_ACCOUNT,
            TuningJobName="tj",
            **extra,
        )

    await tuning_job(account=OTHER_ACCOUNT, objective="Minimize")
    await put(api, [job("theirs")], account=OTHER_ACCOUNT)
    mine, _ = await walk(api)
    theirs, _ = await walk(api, account=OTHER_ACCOUNT)
    assert (names(mine), names(theirs)) == (["mine"], ["theirs"])


async def test_values_round_trip_exactly(api, tuning_job):
    await tuning_job()
    values = [0.1, -0.0, 1e-300, -1.7976931348623157e308, 123456789.123456789, 3]
    await put(api, [job(f"j{i}", value=v) for i, v in enumerate(values)])

    found, _ = await walk(api, SortBy="FinalObjectiveMetricValue")

    got = [s["FinalTuningJobObjectiveMetric"]["Value"] for s in found]
    assert got == sorted(float(v) for v in values)


async def test_every_response_carries_a_fresh_request_id(api, tuning_job):
    await tuning_job()
    ids = set()
    for body in [
        {"AwsAccountId": ACCOUNT, "TuningJobName": "tj"},
        {"AwsAccountId": ACCOUNT, "TuningJobName": "nope"},
        {"AwsAccountId": "bad"},
    ]:
        _, _, response = await api.call("ListTrainingJobsForTuningJob", **body)
        ids.add(response.headers["x-amzn-RequestId"])
    response = await api.client.get("/nowhere")
    ids.add(response.headers["x-amzn-RequestId"])
    assert len(ids) == 4


@pytest.mark.parametrize("order", ["Ascending", "Descending"])
@pytest.mark.parametrize("sort_by", [None, "FinalObjectiveMetricValue"])
async def test_a_page_drawn_from_one_status_past_its_share(
    api, tuning_job, order, sort_by
):
    # Half the jobs are Completed, half Failed, and every Completed one sorts
    # before every Failed one: a page of 40 across statuses must keep reading
    # Completed jobs past the share of the page their count suggests.
    await tuning_job()
    completed = [job(f"c{i:02d}", "Completed", float(i)) for i in range(25)]
    failed = [job(f"f{i:02d}", "Failed", 100.0 + i) for i in range(25)]
    await put(api, completed + failed)
    query = {"SortOrder": order}
    if sort_by:
        query["SortBy"] = sort_by

    found, pages = await walk(api, page_size=40, **query)

    expected = names(completed + failed)
    if order == "Descending":
        expected.reverse()
    assert (names(found), pages) == (expected, 2)
