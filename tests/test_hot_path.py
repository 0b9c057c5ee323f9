"""The list path's shortcuts give exactly what the plain code gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import errors, schemas, storage

FLAT = ("ListTrainingJobsForTuningJob", "CreateTuningJob", "DeleteTuningJob")
VALID = {
    "AwsAccountId": "123456789012",
    "TuningJobName": "tj-1",
    "MaxResults": 100,
    "NextToken": "abc",
    "SortBy": "FinalObjectiveMetricValue",
    "SortOrder": "Descending",
    "TrainingJobStatusEquals": "Completed",
}


def outcome(schema: Any, body: Any) -> tuple[str, Any]:
    """What `schemas.load` answers: the loaded dict or the error's message."""
    try:
        return "loaded", schemas.load(schema, body)
    except errors.ValidationError as problem:
        return "refused", problem.message


def slow_outcome(schema: Any, body: Any, monkeypatch: Any) -> tuple[str, Any]:
    """The same through marshmallow alone."""
    with monkeypatch.context() as patch:
        patch.setattr(schemas, "_fast_loader", lambda _: None)
        return outcome(schema, body)


LIST_BODIES = [
    {"AwsAccountId": "123456789012", "TuningJobName": "a"},
    VALID,
    {**VALID, "MaxResults": 1, "SortOrder": "Ascending"},
    {**VALID, "NextToken": ""},
    {**VALID, "NextToken": "x" * 8192},
    {**VALID, "NextToken": "x" * 8193},
    {**VALID, "MaxResults": 0},
    {**VALID, "MaxResults": 101},
    {**VALID, "MaxResults": True},
    {**VALID, "MaxResults": 10.0},
    {**VALID, "MaxResults": "10"},
    {**VALID, "MaxResults": None},
    {**VALID, "SortBy": "Name"},
    {**VALID, "SortOrder": "descending"},
    {**VALID, "TrainingJobStatusEquals": "Done"},
    {**VALID, "AwsAccountId": "12345678901"},
    {**VALID, "AwsAccountId": "12345678901\n"},
    {**VALID, "AwsAccountId": 123456789012},
    {**VALID, "TuningJobName": ""},
    {**VALID, "TuningJobName": "a" * 33},
    {**VALID, "TuningJobName": "a--b"},
    {**VALID, "TuningJobName": "-a"},
    {**VALID, "TuningJobName": "a\n"},
    {**VALID, "Unknown": 1},
    {"TuningJobName": "a"},
    {},
    {"AwsAccountId": None, "TuningJobName": None},
    {**VALID, "SortBy": ["FinalObjectiveMetricValue"]},
]
OTHER_BODIES = [
    ("CreateTuningJob", {"AwsAccountId": "123456789012", "TuningJobName": "a",
                         "ObjectiveMetricName": "m", "ObjectiveType": "Minimize"}),
    ("CreateTuningJob", {"AwsAccountId": "123456789012", "TuningJobName": "a",
                         "ObjectiveMetricName": "", "ObjectiveType": "Best"}),
    ("CreateTuningJob", {"AwsAccountId": "123456789012", "TuningJobName": "a"}),
    ("DeleteTuningJob", {"AwsAccountId": "123456789012", "TuningJobName": "a"}),
    ("DeleteTuningJob", {"AwsAccountId": "123456789012", "TuningJobName": "a",
                         "MaxResults": 3}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "body"),
    [("ListTrainingJobsForTuningJob", body) for body in LIST_BODIES] + OTHER_BODIES,
)
def test_fast_load_matches_marshmallow(operation, body, monkeypatch):
    schema = schemas.INPUTS[operation]()
    assert outcome(schema, body) == slow_outcome(schema, body, monkeypatch)


def test_fast_load_takes_valid_list_bodies_itself():
    fast = schemas._fast_loader(schemas.INPUTS["ListTrainingJobsForTuningJob"]())
    assert fast is not None
    assert fast(VALID) == {
        "account": "123456789012",
        "tuning_job": "tj-1",
        "max_results": 100,
        "next_token": "abc",
        "sort_by": "FinalObjectiveMetricValue",
        "sort_order": "Descending",
        "status": "Completed",
    }
    assert fast({**VALID, "MaxResults": True}) is None


def test_fast_load_is_not_used_for_nested_schemas():
    assert schemas._fast_loader(schemas.INPUTS["PutTrainingJobs"]()) is None


members = st.sampled_from([*VALID, "ObjectiveMetricName", "Other"])
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([*VALID.values(), "", "a", "Ascending", "Failed", "a-b"]),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.dictionaries(members, values, max_size=8),
        st.builds(lambda extra: {**VALID, **extra}, st.dictionaries(members, values)),
    )
)
def test_fast_load_matches_marshmallow_on_any_body(body):
    schema = schemas.INPUTS["ListTrainingJobsForTuningJob"]()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schemas, "_fast_loader", lambda _: None)
        expected = outcome(schema, body)
    assert outcome(schema, body) == expected


JOBS = [
    storage.TrainingJob("a", 0, {}),
    storage.TrainingJob("B-1", 1, {"lr": "0.1", "x": "%s%%"}, 3, 0.5),
    storage.TrainingJob("c", 2, {"é": '"q"'}, 0, -1e300),
    storage.TrainingJob("d", 3, {}, 2147483647, 0.0),
    storage.TrainingJob("e", 4, {"k": "v|w"}, 1, 1.25e-7),
    storage.TrainingJob("f", 4, {}),
]


@pytest.mark.parametrize(
    ("metric", "objective"),
    [("accuracy", "Maximize"), ('va%s"l\\ué', "Minimize"), ("%%", "Maximize")],
)
def test_summaries_are_the_bytes_summary_gives(metric, objective):
    rows = [
        (job.name.encode(), storage.split_record(storage.record(job))) for job in JOBS
    ]
    prefix = schemas.objective_prefix(metric, objective)

    assert schemas.summaries(rows, metric, objective) == [
        schemas.summary(name, *parts, prefix) for name, parts in rows
    ]
