"""ListTuningJobs and DescribeTuningJob: what an account has, without walks."""

from __future__ import annotations

import pytest

from service.keys import STORAGE

from .conftest import ACCOUNT, OTHER_ACCOUNT
from .test_handlers import STATUSES, job, put

DESCRIBE = "DescribeTuningJob"


async def list_all(api, account=ACCOUNT, page_size=100):
    """Every summary of a ListTuningJobs walk, and the number of pages."""
    found, token, pages = [], None, 0
    while True:
        body = {"AwsAccountId": account, "MaxResults": page_size}
        if token:
            body["NextToken"] = token
        page = await api.ok("ListTuningJobs", **body)
        pages += 1
        found += page["TuningJobSummaries"]
        token = page.get("NextToken")
        if token is None:
            return found, pages


def names(summaries):
    return [summary["TuningJobName"] for summary in summaries]


async def test_list_tuning_jobs_by_name_with_objectives(api, tuning_job):
    for name in ("b", "a-1", "B", "a1"):
        await tuning_job(name, objective="Minimize" if name == "B" else "Maximize")

    found, pages = await list_all(api, page_size=3)

    assert names(found) == ["B", "a-1", "a1", "b"]  # byte order
    assert pages == 2
    assert found[0] == {
        "TuningJobName": "B",
        "ObjectiveMetricName": "accuracy",
        "ObjectiveType": "Minimize",
    }


async def test_list_tuning_jobs_defaults_to_ten(api, tuning_job):
    for i in range(12):
        await tuning_job(f"t{i:02d}")

    page = await api.ok("ListTuningJobs", AwsAccountId=ACCOUNT)

    assert names(page["TuningJobSummaries"]) == [f"t{i:02d}" for i in range(10)]
    rest = await api.ok(
        "ListTuningJobs", AwsAccountId=ACCOUNT, NextToken=page["NextToken"]
    )
    assert names(rest["TuningJobSummaries"]) == ["t10", "t11"]
    assert "NextToken" not in rest


async def test_list_tuning_jobs_is_per_account_and_follows_deletes(api, tuning_job):
    await tuning_job("mine")
    await tuning_job("gone")
    await tuning_job("theirs", account=OTHER_ACCOUNT)
    await api.ok("DeleteTuningJob", AwsAccountId=ACCOUNT, TuningJobName="gone")

    assert names((await list_all(api))[0]) == ["mine"]
    assert names((await list_all(api, OTHER_ACCOUNT))[0]) == ["theirs"]
    assert (await list_all(api, "000000000000"))[0] == []


async def test_list_tuning_jobs_walk_is_stable_under_writes(api, tuning_job):
    for name in ("c", "e", "g"):
        await tuning_job(name)

    first = await api.ok("ListTuningJobs", AwsAccountId=ACCOUNT, MaxResults=2)
    await tuning_job("a")  # before the cursor: not returned
    await tuning_job("f")  # after it: returned
    await api.ok("DeleteTuningJob", AwsAccountId=ACCOUNT, TuningJobName="c")
    rest = await api.ok(
        "ListTuningJobs", AwsAccountId=ACCOUNT, NextToken=first["NextToken"]
    )

    assert names(first["TuningJobSummaries"]) == ["c", "e"]
    assert names(rest["TuningJobSummaries"]) == ["f", "g"]


async def test_list_tuning_jobs_token_is_bound_to_its_account(api, tuning_job):
    for name in ("a", "b"):
        await tuning_job(name)
    page = await api.ok("ListTuningJobs", AwsAccountId=ACCOUNT, MaxResults=1)

    message = await api.error(
        "ListTuningJobs",
        "ValidationError",
        AwsAccountId=OTHER_ACCOUNT,
        NextToken=page["NextToken"],
    )
    assert "NextToken" in message
    await api.error(
        "ListTuningJobs",
        "ValidationError",
        AwsAccountId=ACCOUNT,
        NextToken=page["NextToken"][:-2] + "AA",
    )


@pytest.mark.parametrize(
    "body, where",
    [
        ({"MaxResults": 0}, "maxResults"),
        ({"MaxResults": 101}, "maxResults"),
        ({"MaxResults": "5"}, "maxResults"),
        ({"AwsAccountId": "12"}, "awsAccountId"),
        ({"TuningJobName": "x"}, "TuningJobName"),
    ],
)
async def test_list_tuning_jobs_validation(api, body, where):
    message = await api.error(
        "ListTuningJobs", "ValidationError", **{"AwsAccountId": ACCOUNT, **body}
    )
    assert where[:1].lower() + where[1:] in message


async def test_a_crash_between_the_index_and_the_tuning_job_is_harmless(
    api, tuning_job
):
    accounts = api.client.app[STORAGE].accounts
    await tuning_job("kept")
    # What a crash leaves: a name in the index whose tuning job was never made
    # (Create stopped after step one), or whose tuning job is gone (Delete
    # stopped after step one).
    await accounts.index(ACCOUNT, "never-made")
    await accounts.index(ACCOUNT, "a-gone")

    page = await api.ok("ListTuningJobs", AwsAccountId=ACCOUNT, MaxResults=1)
    assert page["TuningJobSummaries"] == []  # "a-gone" skipped: a short page
    assert page["NextToken"]
    for page_size in (1, 2, 3):
        assert names((await list_all(api, page_size=page_size))[0]) == ["kept"]

    await tuning_job("never-made")  # the client's retry sets it right
    await api.error(
        "DeleteTuningJob",
        "ResourceNotFound",
        AwsAccountId=ACCOUNT,
        TuningJobName="a-gone",
    )
    assert names((await list_all(api))[0]) == ["kept", "never-made"]
    _, more, _ = await accounts.tuning_jobs(ACCOUNT, 10)
    assert not more


async def test_create_repairs_a_missing_index_entry(api, tuning_job):
    accounts = api.client.app[STORAGE].accounts
    await tuning_job("tj")
    await accounts.unindex(ACCOUNT, "tj")

    await tuning_job("tj")  # idempotent, and puts the name back

    assert names((await list_all(api))[0]) == ["tj"]


async def describe(api, name="tj", account=ACCOUNT):
    return await api.ok(DESCRIBE, AwsAccountId=account, TuningJobName=name)


async def test_describe_counts_jobs_per_status(api, tuning_job):
    await tuning_job(metric="loss", objective="Minimize")
    await put(
        api,
        [job("a", "InProgress"), job("b", "Failed"), job("c", "Failed")]
        + [job(f"s{i}", "Stopped") for i in range(4)],
    )

    found = await describe(api)

    assert found["TuningJobName"] == "tj"
    assert found["ObjectiveMetricName"] == "loss"
    assert found["ObjectiveType"] == "Minimize"
    assert found["TrainingJobStatusCounters"] == {
        "InProgress": 1,
        "Completed": 0,
        "Failed": 2,
        "Stopping": 0,
        "Stopped": 4,
    }
    assert "BestTrainingJob" not in found  # no job has a value


@pytest.mark.parametrize(
    "objective, best",
    [("Maximize", "z-top"), ("Minimize", "a-low")],
)
async def test_describe_best_job_follows_the_objective(
    api, tuning_job, objective, best
):
    await tuning_job(objective=objective)
    await put(
        api,
        [
            job("m", "Completed", 0.5),
            job("a-top", "Stopped", 9.0),
            job("z-top", "Completed", 9.0, HyperParameters={"lr": "1"}),
            job("a-low", "Failed", -3.0),
            job("b-low", "Completed", -3.0),
            job("none", "InProgress"),
        ],
    )

    found = await describe(api)

    # The best is the first job of the list sorted by value in the direction
    # the objective prefers, ties broken by name the way the list breaks them.
    order = "Descending" if objective == "Maximize" else "Ascending"
    first = await api.ok(
        "ListTrainingJobsForTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        SortBy="FinalObjectiveMetricValue",
        SortOrder=order,
        MaxResults=1,
    )
    assert found["BestTrainingJob"]["TrainingJobName"] == best
    assert found["BestTrainingJob"] == first["TrainingJobSummaries"][0]


async def test_describe_follows_updates(api, tuning_job):
    await tuning_job()
    await put(api, [job("a", value=1.0), job("b", value=2.0)])
    await put(api, [job("b", "Failed")])  # b loses its value

    found = await describe(api)

    assert found["BestTrainingJob"]["TrainingJobName"] == "a"
    assert found["TrainingJobStatusCounters"]["Completed"] == 1
    assert found["TrainingJobStatusCounters"]["Failed"] == 1


async def test_describe_unknown_or_foreign_is_not_found(api, tuning_job):
    await tuning_job()
    for account, name in ((ACCOUNT, "missing"), (OTHER_ACCOUNT, "tj")):
        message = await api.error(
            DESCRIBE, "ResourceNotFound", AwsAccountId=account, TuningJobName=name
        )
        assert name in message


async def test_describe_counts_a_thousand_jobs(api, tuning_job):
    await tuning_job()
    await put(api, [job(f"j{i:04d}", STATUSES[i % 5], float(i)) for i in range(1000)])

    found = await describe(api)

    assert sum(found["TrainingJobStatusCounters"].values()) == 1000
    assert found["BestTrainingJob"]["TrainingJobName"] == "j0999"
