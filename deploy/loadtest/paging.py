"""Page walks as boto3's paginator makes them, free of any load-test framework.

`walk` follows `NextToken` until a page comes without one, as
`get_paginator("list_training_jobs_for_tuning_job")` does, and stops early on
an error, naming it by its `x-amzn-ErrorType`. The locustfile calls it; so do
the tests, against a live server.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

OPERATION = "ListTrainingJobsForTuningJob"
METRIC = "FinalObjectiveMetricValue"
STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")


@dataclass(frozen=True)
class Answer:
    """What one request got back: status, the error code if any, the body."""

    status: int
    error_code: str | None
    body: dict[str, Any]


# Sends one operation's body and returns the answer; the locustfile's version
# goes through locust's client so that every request is timed and counted.
Post = Callable[[str, dict[str, Any]], Answer]


@dataclass
class Walk:
    """The outcome of one walk: pages read, jobs seen, and how it ended."""

    pages: int = 0
    names: list[str] = field(default_factory=list)
    error_code: str | None = None


def answer_of(status: int, headers: Mapping[str, str], text: str) -> Answer:
    """An Answer from a raw HTTP response."""
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {}
    code = headers.get("x-amzn-ErrorType") if status >= 400 else None
    if status >= 400 and code is None:
        code = f"HTTP {status}"
    return Answer(status, code, body if isinstance(body, dict) else {})


def random_query(rng: random.Random) -> dict[str, Any]:
    """A mix of the orders and filters clients ask for, and of page sizes."""
    query: dict[str, Any] = {
        "SortOrder": rng.choice(("Ascending", "Descending")),
        "MaxResults": rng.choice((10, 50, 100)),
    }
    if rng.random() < 0.6:
        query["SortBy"] = METRIC
    if rng.random() < 0.4:
        query["TrainingJobStatusEquals"] = rng.choice(STATUSES)
    return query


def walk(
    post: Post,
    account: str,
    tuning_job: str,
    query: Mapping[str, Any],
    max_pages: int | None = None,
) -> Walk:
    """Follow NextToken from the first page until none comes (or `max_pages`)."""
    outcome = Walk()
    body = {"AwsAccountId": account, "TuningJobName": tuning_job, **query}
    seen_tokens: set[str] = set()
    while max_pages is None or outcome.pages < max_pages:
        answer = post(OPERATION, body)
        outcome.pages += 1
        if answer.error_code is not None:
            outcome.error_code = answer.error_code
            return outcome
        page = answer.body
        outcome.names += [s["TrainingJobName"] for s in page["TrainingJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            return outcome
        # boto3's paginator refuses a token it has already followed.
        if token in seen_tokens:
            outcome.error_code = "RepeatedNextToken"
            return outcome
        seen_tokens.add(token)
        body = {**body, "NextToken": token}
    return outcome
