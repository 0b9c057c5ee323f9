"""NextTokens: opaque, signed, bound to their query, refused when altered."""

from __future__ import annotations

import string

import pytest

from service import errors, tokens

from .conftest import ACCOUNT, OTHER_ACCOUNT, SECRET
from .test_handlers import job, put

QUERY = b"123456789012\0tj\0\0Ascending\0"
ALPHABET = string.ascii_letters + string.digits + "-_"


@pytest.mark.parametrize(
    "cursor",
    [
        tokens.Cursor("a"),
        tokens.Cursor("job-0001", 0.1),
        tokens.Cursor("x" * 63, -1.7976931348623157e308),
        tokens.Cursor("z", -0.0),
    ],
)
def test_token_round_trips_its_cursor(cursor):
    token = tokens.issue(SECRET, QUERY, cursor)
    assert tokens.read(SECRET, QUERY, token) == cursor
    assert set(token) <= set(ALPHABET)


def test_token_refuses_every_single_character_change():
    token = tokens.issue(SECRET, QUERY, tokens.Cursor("job-1", 0.5))
    for position, original in enumerate(token):
        for replacement in {"A", "B", "g", "Q", "0", "-", "_"} - {original}:
            altered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(errors.ValidationError):
                tokens.read(SECRET, QUERY, altered)


@pytest.mark.parametrize(
    "altered",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t + "=",
        lambda t: "",
        lambda t: "é" + t,
        lambda t: t.replace("-", "+").replace("_", "/") + "+",
        lambda t: "A" * 8192,
    ],
)
def test_token_refuses_truncation_and_padding(altered):
    token = tokens.issue(SECRET, QUERY, tokens.Cursor("job-1", 0.5))
    with pytest.raises(errors.ValidationError):
        tokens.read(SECRET, QUERY, altered(token))


def test_token_is_bound_to_query_and_secret():
    token = tokens.issue(SECRET, QUERY, tokens.Cursor("job-1"))
    with pytest.raises(errors.ValidationError):
        tokens.read(SECRET, QUERY.replace(b"tj", b"tk"), token)
    with pytest.raises(errors.ValidationError):
        tokens.read(b"another secret", QUERY, token)


@pytest.mark.parametrize(
    "change",
    [
        {"AwsAccountId": OTHER_ACCOUNT},
        {"TuningJobName": "other"},
        {"SortBy": "FinalObjectiveMetricValue"},
        {"SortOrder": "Descending"},
        {"TrainingJobStatusEquals": "Completed"},
    ],
)
async def test_api_refuses_a_token_from_another_query(api, tuning_job, change):
    for account in (ACCOUNT, OTHER_ACCOUNT):
        for name in ("tj", "other"):
            await tuning_job(name=name, account=account)
            await put(api, [job(f"j{i}", value=i) for i in range(3)], name, account)
    query = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj", "MaxResults": 1}
    first = await api.ok("ListTrainingJobsForTuningJob", **query)

    message = await api.error(
        "ListTrainingJobsForTuningJob",
        "ValidationError",
        **{**query, **change, "NextToken": first["NextToken"]},
    )

    assert "NextToken" in message
    assert first["NextToken"] not in message


async def test_api_refuses_an_altered_token(api, tuning_job):
    await tuning_job()
    await put(api, [job(f"j{i}") for i in range(3)])
    query = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj", "MaxResults": 1}
    token = (await api.ok("ListTrainingJobsForTuningJob", **query))["NextToken"]
    altered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]

    status, payload, _ = await api.call(
        "ListTrainingJobsForTuningJob", **query, NextToken=altered
    )

    assert (status, payload["__type"]) == (400, "ValidationError")


async def test_token_survives_a_restart_with_the_same_secret(
    api, tuning_job, aiohttp_client, app_factory
):
    await tuning_job()
    await put(api, [job(f"j{i}") for i in range(3)])
    query = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj", "MaxResults": 1}
    token = (await api.ok("ListTrainingJobsForTuningJob", **query))["NextToken"]

    restarted = await aiohttp_client(app_factory())
    response = await restarted.post(
        "/ListTrainingJobsForTuningJob", json={**query, "NextToken": token}
    )

    page = await response.json()
    assert [s["TrainingJobName"] for s in page["TrainingJobSummaries"]] == ["j1"]


async def test_empty_token_starts_at_the_beginning(api, tuning_job):
    await tuning_job()
    await put(api, [job("a"), job("b")])
    page = await api.ok(
        "ListTrainingJobsForTuningJob",
        AwsAccountId=ACCOUNT,
        TuningJobName="tj",
        NextToken="",
    )
    assert len(page["TrainingJobSummaries"]) == 2
