"""GET /openapi.json: generated from the schemas, and fuzzed with schemathesis."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from service import handlers, openapi, schemas

from .conftest import ACCOUNT
from .test_sdk import only_real_redis, serving

only_fake_redis = pytest.mark.parametrize("redis", ["fake"], indirect=True)

# Generated cases per operation and generation mode; the floor allows for
# hypothesis ending a little early on small input spaces.
EXAMPLES_PER_MODE = 50
MIN_CASES_PER_MODE = 25
# Python-only regular expression syntax that ECMA (JSON Schema) lacks.
_PYTHON_ONLY = re.compile(r"\\[AZz]|\(\?P?<|\(\?[aiLmsux]")
FUZZ_TUNING_JOB = "fuzz-target"
FAULT_ACCOUNT = "999999999999"
_CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]
# Invalid input must be refused as such: a 404 or 409 would mean the server
# looked the request up without validating it first.
_CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": ["400", "413"]}}}
)


async def fetch_document(api: Any) -> tuple[dict, Any]:
    """GET /openapi.json: the decoded document and the response."""
    response = await api.client.get("/openapi.json")
    assert response.status == 200
    return orjson.loads(await response.read()), response


def resolve(document: dict, node: dict) -> dict:
    """Follow a local $ref, if `node` is one."""
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def walk_schemas(node: Any) -> Iterator[dict]:
    """Every object inside `node`, itself included."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_schemas(value)


@only_fake_redis
async def test_document_describes_every_operation(api):
    document, response = await fetch_document(api)

    assert response.content_type == "application/json"
    assert response.headers["x-amzn-RequestId"]
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {f"/{name}" for name in handlers.OPERATIONS}
    for name in handlers.OPERATIONS:
        operation = document["paths"][f"/{name}"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        answers = operation["responses"]
        assert operation["operationId"] == name
        request = resolve(document, body)
        fields = schemas.INPUTS[name]().fields.values()
        assert set(request["properties"]) == {field.data_key for field in fields}
        assert set(request.get("required", ())) == {
            field.data_key for field in fields if field.required
        }
        assert request["additionalProperties"] is False
        assert "application/json" in answers["200"]["content"]
        wanted = {str(kind.status) for kind in openapi.operation_errors(name)}
        assert set(answers) == {"200", *wanted}


@only_fake_redis
async def test_document_documents_each_error_code_under_its_status(api):
    document, _ = await fetch_document(api)
    error = document["components"]["schemas"]["Error"]

    assert error["required"] == ["__type", "message"]
    for name in handlers.OPERATIONS:
        answers = document["paths"][f"/{name}"]["post"]["responses"]
        for kind in openapi.operation_errors(name):
            answer = answers[str(kind.status)]
            codes = answer["headers"]["x-amzn-ErrorType"]["schema"]["enum"]
            body = answer["content"]["application/json"]["schema"]["allOf"]
            assert kind.code in codes
            assert body[1]["properties"]["__type"]["enum"] == codes
            assert answer["headers"]["x-amzn-RequestId"]["required"] is True


@only_fake_redis
async def test_document_carries_the_constraints_of_the_request_schemas(api):
    document, _ = await fetch_document(api)
    components = document["components"]["schemas"]
    listing = components["ListTrainingJobsInput"]["properties"]
    job = components["TrainingJobInput"]["properties"]
    batch = components["PutTrainingJobsInput"]["properties"]["TrainingJobs"]

    assert listing["TuningJobName"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 32,
        "pattern": schemas.TUNING_JOB_PATTERN,
    }
    assert listing["AwsAccountId"]["pattern"] == "^[0-9]{12}$"
    assert (listing["MaxResults"]["minimum"], listing["MaxResults"]["maximum"]) == (
        1,
        100,
    )
    assert listing["TrainingJobStatusEquals"]["enum"] == list(schemas.STATUSES)
    assert (batch["minItems"], batch["maxItems"]) == (1, 1000)
    assert job["HyperParameters"]["maxProperties"] == 100
    assert job["HyperParameters"]["propertyNames"] == {"maxLength": 256}
    assert job["HyperParameters"]["additionalProperties"]["maxLength"] == 256
    assert "maxLength" not in job["HyperParameters"]


@only_fake_redis
async def test_document_patterns_are_ecma_regular_expressions(api):
    document, _ = await fetch_document(api)

    patterns = [node["pattern"] for node in walk_schemas(document) if "pattern" in node]

    assert len(patterns) >= 3
    for pattern in patterns:
        assert not _PYTHON_ONLY.search(pattern), pattern
        assert pattern.startswith("^") and pattern.endswith("$"), pattern


@only_fake_redis
async def test_document_is_generated_once(monkeypatch, aiohttp_client, app_factory):
    built = []
    real_build = openapi.build_document
    monkeypatch.setattr(
        openapi, "build_document", lambda: built.append(1) or real_build()
    )
    openapi.document_bytes.cache_clear()
    try:
        bodies = []
        for _ in range(2):
            client = await aiohttp_client(app_factory())
            for _ in range(2):
                bodies.append(await (await client.get("/openapi.json")).read())
    finally:
        openapi.document_bytes.cache_clear()

    assert len(built) == 1
    assert len(set(bodies)) == 1
    assert orjson.loads(bodies[0]) == real_build()


def test_ecma_pattern_anchors_at_the_very_end():
    assert openapi._ecma_pattern(r"^[0-9]{12}\Z") == "^[0-9]{12}$"
    assert openapi._ecma_pattern("^a+$") == "^a+$"


def _aimed(case: Any, aim: bool) -> None:
    """Point a positive case at known data, to reach the answers that succeed.

    Fault injection operations always act on an account of their own, so that
    the faults they configure never reach the other operations' cases.
    DeleteTuningJob is never aimed, so that the target outlives the run.
    """
    body = case.body
    if not isinstance(body, dict) or "AwsAccountId" not in body:
        return
    operation = case.operation.label.removeprefix("POST /")
    if operation in schemas.FAULT_OPERATIONS:
        body["AwsAccountId"] = FAULT_ACCOUNT
    elif aim:
        body["AwsAccountId"] = ACCOUNT
        if "TuningJobName" in body and operation != "DeleteTuningJob":
            body["TuningJobName"] = FUZZ_TUNING_JOB


class Tally:
    """What a fuzzing run sent and got: cases per run, answers per status."""

    def __init__(self) -> None:
        self.cases: Counter = Counter()
        self.statuses: Counter = Counter()

    def succeeded(self, operation: str) -> bool:
        """Whether `operation` answered 200 at least once."""
        return self.statuses[f"POST /{operation}", 200] > 0


def fuzz(document: dict, base_url: str) -> Tally:
    """Run schemathesis over every operation, in both generation modes."""
    schema = schemathesis.openapi.from_dict(document, config=_CONFIG)
    tally = Tally()
    with requests.Session() as http:
        created = http.post(
            f"{base_url}/CreateTuningJob",
            json={
                "AwsAccountId": ACCOUNT,
                "TuningJobName": FUZZ_TUNING_JOB,
                "ObjectiveMetricName": "loss",
                "ObjectiveType": "Minimize",
            },
            timeout=10,
        )
        assert created.status_code == 200, created.text
        for result in schema.get_all_operations():
            for mode in GenerationMode:
                fuzz_operation(result.ok(), mode, base_url, http, tally)
    return tally


def fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    http: requests.Session,
    tally: Tally,
) -> None:
    """Fuzz one operation in one generation mode, counting into `tally`."""

    @given(case=operation.as_strategy(generation_mode=mode), aim=st.booleans())
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, aim: bool) -> None:
        if mode is GenerationMode.POSITIVE:
            _aimed(case, aim)
        response = case.call(base_url=base_url, session=http, timeout=10)
        case.validate_response(response, checks=_CHECKS)
        tally.cases[operation.label, mode.value] += 1
        tally.statuses[operation.label, response.status_code] += 1

    run()


@only_real_redis
async def test_schemathesis_finds_no_fault_in_any_operation(
    app_factory, capsys, record_property
):
    app = app_factory(fault_injection=True)
    async with serving(app) as base_url:
        http = await asyncio.to_thread(
            requests.get, f"{base_url}/openapi.json", timeout=10
        )
        tally = await asyncio.to_thread(fuzz, http.json(), base_url)

    total = sum(tally.cases.values())
    record_property("schemathesis_cases", total)
    statuses = Counter()
    for (_, status), count in tally.statuses.items():
        statuses[status] += count
    with capsys.disabled():
        print(
            f"\nschemathesis: {total} generated cases over {len(tally.cases)} runs;"
            f" answers by status: {dict(sorted(statuses.items()))}"
        )
    assert {label for label, _ in tally.cases} == {
        f"POST /{name}" for name in handlers.OPERATIONS
    }
    for run_label, count in tally.cases.items():
        assert count >= MIN_CASES_PER_MODE, (run_label, count)
    # The happy paths were reached, so their answers were checked too.
    for operation in (
        "ListTrainingJobsForTuningJob",
        "PutTrainingJobs",
        "CreateTuningJob",
        "DescribeTuningJob",
        "ListTuningJobs",
        "PutFaultInjection",
        "GetFaultInjection",
    ):
        assert tally.succeeded(operation), operation
