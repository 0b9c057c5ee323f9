"""Validation tables: each constraint of each operation, at and past its edge."""

from __future__ import annotations

import re

import pytest

from .conftest import ACCOUNT

LIST = "ListTrainingJobsForTuningJob"
BASE = {"AwsAccountId": ACCOUNT, "TuningJobName": "tj"}
PATTERN = "Member must satisfy regular expression pattern"


def training(**changes):
    item = {"TrainingJobName": "job-1", "TrainingJobStatus": "Completed"}
    item.update(changes)
    return {**BASE, "TrainingJobs": [item]}


# (operation, body, the path AWS names, a fragment of the constraint)
INVALID = [
    (LIST, {"TuningJobName": "tj"}, "awsAccountId", "must not be null"),
    (LIST, {**BASE, "AwsAccountId": None}, "awsAccountId", "must not be null"),
    (LIST, {**BASE, "AwsAccountId": "12345678901"}, "awsAccountId", "length"),
    (LIST, {**BASE, "AwsAccountId": "1234567890123"}, "awsAccountId", "length"),
    (LIST, {**BASE, "AwsAccountId": "12345678901a"}, "awsAccountId", PATTERN),
    (LIST, {**BASE, "AwsAccountId": "12345678901\n"}, "awsAccountId", PATTERN),
    (LIST, {**BASE, "AwsAccountId": 123456789012}, "awsAccountId", "type string"),
    (LIST, {"AwsAccountId": ACCOUNT}, "tuningJobName", "must not be null"),
    (LIST, {**BASE, "TuningJobName": ""}, "tuningJobName", "length greater"),
    (LIST, {**BASE, "TuningJobName": "a" * 33}, "tuningJobName", "length less"),
    (LIST, {**BASE, "TuningJobName": "-a"}, "tuningJobName", PATTERN),
    (LIST, {**BASE, "TuningJobName": "a-"}, "tuningJobName", PATTERN),
    (LIST, {**BASE, "TuningJobName": "a_b"}, "tuningJobName", PATTERN),
    (LIST, {**BASE, "TuningJobName": "tj\n"}, "tuningJobName", PATTERN),
    (LIST, {**BASE, "TuningJobName": "é"}, "tuningJobName", PATTERN),
    (LIST, {**BASE, "MaxResults": 0}, "maxResults", "greater than or equal to 1"),
    (LIST, {**BASE, "MaxResults": 101}, "maxResults", "less than or equal to 100"),
    (LIST, {**BASE, "MaxResults": True}, "maxResults", "type integer"),
    (LIST, {**BASE, "MaxResults": "5"}, "maxResults", "type integer"),
    (LIST, {**BASE, "MaxResults": 5.5}, "maxResults", "type integer"),
    (LIST, {**BASE, "MaxResults": 5.0}, "maxResults", "type integer"),
    (LIST, {**BASE, "MaxResults": None}, "maxResults", "must not be null"),
    (LIST, {**BASE, "NextToken": "a" * 8193}, "nextToken", "length less"),
    (LIST, {**BASE, "NextToken": 5}, "nextToken", "type string"),
    (LIST, {**BASE, "SortBy": "Name"}, "sortBy", "enum value set"),
    (LIST, {**BASE, "SortOrder": "ascending"}, "sortOrder", "enum value set"),
    (
        LIST,
        {**BASE, "TrainingJobStatusEquals": "Done"},
        "trainingJobStatusEquals",
        "enum value set",
    ),
    (LIST, {**BASE, "Extra": 1}, "extra", "not defined in the input shape"),
    (
        "CreateTuningJob",
        {**BASE, "ObjectiveMetricName": "", "ObjectiveType": "Maximize"},
        "objectiveMetricName",
        "length greater",
    ),
    (
        "CreateTuningJob",
        {**BASE, "ObjectiveMetricName": "m" * 256, "ObjectiveType": "Maximize"},
        "objectiveMetricName",
        "length less",
    ),
    (
        "CreateTuningJob",
        {**BASE, "ObjectiveMetricName": "m", "ObjectiveType": "Max"},
        "objectiveType",
        "enum value set",
    ),
    (
        "CreateTuningJob",
        {**BASE, "ObjectiveType": "Minimize"},
        "objectiveMetricName",
        "must not be null",
    ),
    (
        "DeleteTuningJob",
        {**BASE, "TuningJobName": "a" * 33},
        "tuningJobName",
        "length less",
    ),
    ("PutTrainingJobs", BASE, "trainingJobs", "must not be null"),
    (
        "PutTrainingJobs",
        {**BASE, "TrainingJobs": []},
        "trainingJobs",
        "length greater",
    ),
    ("PutTrainingJobs", {**BASE, "TrainingJobs": {}}, "trainingJobs", "type list"),
    (
        "PutTrainingJobs",
        {
            **BASE,
            "TrainingJobs": [
                {"TrainingJobName": f"j{i}", "TrainingJobStatus": "Failed"}
                for i in range(1001)
            ],
        },
        "trainingJobs",
        "length less than or equal to 1000",
    ),
    (
        "PutTrainingJobs",
        {**BASE, "TrainingJobs": [5]},
        "trainingJobs.1.member",
        "type structure",
    ),
    (
        "PutTrainingJobs",
        training(TrainingJobName="j" * 64),
        "trainingJobs.1.member.trainingJobName",
        PATTERN,
    ),
    (
        "PutTrainingJobs",
        training(TrainingJobName="a--"),
        "trainingJobs.1.member.trainingJobName",
        PATTERN,
    ),
    (
        "PutTrainingJobs",
        training(TrainingJobStatus="Done"),
        "trainingJobs.1.member.trainingJobStatus",
        "enum value set",
    ),
    (
        "PutTrainingJobs",
        training(HyperParameters={str(i): "v" for i in range(101)}),
        "trainingJobs.1.member.hyperParameters",
        "length less than or equal to 100",
    ),
    (
        "PutTrainingJobs",
        training(HyperParameters={"k" * 257: "v"}),
        "trainingJobs.1.member.hyperParameters",
        "Map keys must satisfy constraint",
    ),
    (
        "PutTrainingJobs",
        training(HyperParameters={"k": "v" * 257}),
        "trainingJobs.1.member.hyperParameters",
        "Map value must satisfy constraint",
    ),
    (
        "PutTrainingJobs",
        training(HyperParameters={"k": 1}),
        "trainingJobs.1.member.hyperParameters",
        "type string",
    ),
    (
        "PutTrainingJobs",
        training(HyperParameters=["k"]),
        "trainingJobs.1.member.hyperParameters",
        "type map",
    ),
    (
        "PutTrainingJobs",
        training(RetriedAttempt=-1),
        "trainingJobs.1.member.retriedAttempt",
        "greater than or equal to 0",
    ),
    (
        "PutTrainingJobs",
        training(RetriedAttempt=2**31),
        "trainingJobs.1.member.retriedAttempt",
        "less than or equal to 2147483647",
    ),
    (
        "PutTrainingJobs",
        training(FinalObjectiveMetricValue="0.5"),
        "trainingJobs.1.member.finalObjectiveMetricValue",
        "type number",
    ),
    (
        "PutTrainingJobs",
        training(FinalObjectiveMetricValue=False),
        "trainingJobs.1.member.finalObjectiveMetricValue",
        "type number",
    ),
    (
        "PutTrainingJobs",
        training(Unknown="x"),
        "trainingJobs.1.member.unknown",
        "not defined in the input shape",
    ),
]


@pytest.mark.parametrize(
    "operation, body, path, constraint", INVALID, ids=lambda v: str(v)[:40]
)
async def test_invalid_input_names_the_member_and_constraint(
    api, tuning_job, operation, body, path, constraint
):
    await tuning_job()
    status, payload, _ = await api.call(operation, **body)

    assert status == 400
    assert payload["__type"] == "ValidationError"
    message = payload["message"]
    assert re.match(r"\d+ validation errors? detected: Value ", message)
    assert f" at '{path}' failed to satisfy constraint: " in message
    assert constraint in message


VALID_EDGES = [
    (LIST, {**BASE, "MaxResults": 1}),
    (LIST, {**BASE, "MaxResults": 100}),
    (LIST, {**BASE, "TuningJobName": "a" * 32}),
    (LIST, {**BASE, "TuningJobName": "a--b-c"}),
    (LIST, {**BASE, "NextToken": ""}),
    (LIST, {**BASE, "SortBy": "FinalObjectiveMetricValue", "SortOrder": "Descending"}),
    (LIST, {**BASE, "TrainingJobStatusEquals": "Stopping"}),
    ("PutTrainingJobs", training(TrainingJobName="j" * 63)),
    ("PutTrainingJobs", training(TrainingJobName="a--b")),
    ("PutTrainingJobs", training(HyperParameters={str(i): "v" for i in range(100)})),
    ("PutTrainingJobs", training(HyperParameters={"k" * 256: "v" * 256, "": ""})),
    ("PutTrainingJobs", training(RetriedAttempt=2**31 - 1)),
    ("PutTrainingJobs", training(FinalObjectiveMetricValue=-1e308)),
    ("PutTrainingJobs", training(FinalObjectiveMetricValue=7)),
    (
        "PutTrainingJobs",
        {
            **BASE,
            "TrainingJobs": [
                {"TrainingJobName": f"j{i}", "TrainingJobStatus": "Failed"}
                for i in range(1000)
            ],
        },
    ),
]


@pytest.mark.parametrize("operation, body", VALID_EDGES, ids=lambda v: str(v)[:40])
async def test_inputs_at_the_edge_are_accepted(api, tuning_job, operation, body):
    await tuning_job(name=body["TuningJobName"])
    status, payload, _ = await api.call(operation, **body)
    assert status == 200, payload


async def test_every_offending_member_is_named_once(api):
    status, payload, _ = await api.call(
        LIST,
        AwsAccountId="1",
        TuningJobName="-",
        MaxResults=0,
        SortOrder="Up",
        Other=True,
    )

    message = payload["message"]
    assert status == 400
    assert message.startswith("6 validation errors detected: ")
    for path in ("awsAccountId", "tuningJobName", "maxResults", "sortOrder", "other"):
        assert f"at '{path}'" in message
    assert message.count("at 'awsAccountId'") == 2  # its length and its pattern


async def test_long_values_are_shortened_in_messages(api):
    _, payload, _ = await api.call(LIST, AwsAccountId=ACCOUNT, TuningJobName="x" * 5000)
    assert "x" * 125 + "..." in payload["message"]
    assert "x" * 200 not in payload["message"]


@pytest.mark.parametrize(
    "nested, shown",
    [
        (b"[" * 300 + b"]" * 300, "'[...]'"),
        (b'{"a":' * 300 + b"1" + b"}" * 300, "'{...}'"),
    ],
)
async def test_values_too_deep_to_show_are_elided(api, nested, shown):
    body = b'{"Deep": ' + nested + b"}"
    response = await api.raw(LIST, body)
    payload = await response.json()
    assert response.status == 400
    assert f"Value {shown} at 'deep'" in payload["message"]
