"""The shipped botocore model and the server's own validation agree.

Both sides are read independently, each into one table of constraints per
member path (`TrainingJobs[].HyperParameters{key}`), and the tables must be
equal: the marshmallow schemas that validate requests, walked field by field
and validator by validator, and the model's shapes, walked member by member.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from marshmallow import Schema, fields, validate

from service import errors, handlers, model, openapi, schemas

MODEL = json.loads(model.service_model_file().read_text())
PAGINATORS = json.loads(
    model.service_model_file().with_name("paginators-1.json").read_text()
)
SHAPES = MODEL["shapes"]
_PATTERN_PREFIX = "Member must satisfy regular expression pattern: "
# marshmallow field classes and the model's shape types they stand for; a
# field class missing here fails the walk rather than being skipped.
_FIELD_TYPES = (
    (fields.String, "string"),
    (fields.Integer, "integer"),
    (fields.Float, "double"),
    (fields.Boolean, "boolean"),
    (fields.List, "list"),
    (fields.Dict, "map"),
    (fields.Nested, "structure"),
)


def schema_constraints(schema: Schema) -> dict[str, dict[str, Any]]:
    """Every member's constraints, by path, as the marshmallow schema checks them."""
    found: dict[str, dict[str, Any]] = {}
    _walk_schema(schema, "", found)
    return found


def _walk_schema(schema: Schema, prefix: str, found: dict) -> None:
    for name, field in schema.fields.items():
        _walk_field(field, prefix + (field.data_key or name), found, field.required)


def _walk_field(
    field: fields.Field, path: str, found: dict, required: bool | None
) -> None:
    rules: dict[str, Any] = {"type": _field_type(field, path), "required": required}
    for rule in field.validators:
        rules.update(_validator_constraints(rule, path))
    found[path] = rules

    if isinstance(field, fields.List):
        _walk_field(field.inner, f"{path}[]", found, None)
    elif isinstance(field, fields.Dict):
        _walk_field(field.key_field, path + "{key}", found, None)
        _walk_field(field.value_field, path + "{value}", found, None)
    elif isinstance(field, fields.Nested):
        _walk_schema(field.schema, f"{path}.", found)


def _field_type(field: fields.Field, path: str) -> str:
    for kind, shape_type in _FIELD_TYPES:
        if isinstance(field, kind):
            return shape_type
    raise AssertionError(f"{path}: no model type for {type(field).__name__}")


def _validator_constraints(rule: Any, path: str) -> dict[str, Any]:
    if isinstance(rule, validate.Length):
        low, high = rule.min, rule.max
        if rule.equal is not None:
            low = high = rule.equal
        return _bounds(low, high)
    if isinstance(rule, validate.Range):
        assert rule.min_inclusive and rule.max_inclusive, f"{path}: open range"
        return _bounds(rule.min, rule.max)
    if isinstance(rule, validate.Regexp):
        # The pattern a client sees is the one the error message shows.
        shown = rule.error.format(input="", regex=rule.regex.pattern)
        assert shown.startswith(_PATTERN_PREFIX), f"{path}: {shown}"
        return {"pattern": shown.removeprefix(_PATTERN_PREFIX)}
    if isinstance(rule, validate.OneOf):
        return {"enum": list(rule.choices)}
    raise AssertionError(f"{path}: {type(rule).__name__} has no model counterpart")


def _bounds(low: Any, high: Any) -> dict[str, Any]:
    bounds = {}
    if low is not None:
        bounds["min"] = low
    if high is not None:
        bounds["max"] = high
    return bounds


def model_constraints(shape_name: str) -> dict[str, dict[str, Any]]:
    """Every member's constraints, by path, as the shipped model states them."""
    found: dict[str, dict[str, Any]] = {}
    _walk_structure(shape_name, "", found)
    return found


def _walk_structure(shape_name: str, prefix: str, found: dict) -> None:
    shape = SHAPES[shape_name]
    required = set(shape.get("required", ()))
    assert required <= set(shape["members"]), shape_name
    for member, reference in shape["members"].items():
        _walk_shape(reference["shape"], prefix + member, found, member in required)


def _walk_shape(shape_name: str, path: str, found: dict, required: bool | None) -> None:
    shape = SHAPES[shape_name]
    shape_type = "double" if shape["type"] == "float" else shape["type"]
    rules: dict[str, Any] = {"type": shape_type, "required": required}
    rules.update({key: shape[key] for key in ("min", "max", "pattern", "enum")
                  if key in shape})  # fmt: skip
    found[path] = rules

    if shape_type == "structure":
        _walk_structure(shape_name, f"{path}.", found)
    elif shape_type == "list":
        _walk_shape(shape["member"]["shape"], f"{path}[]", found, None)
    elif shape_type == "map":
        _walk_shape(shape["key"]["shape"], path + "{key}", found, None)
        _walk_shape(shape["value"]["shape"], path + "{value}", found, None)


def assert_same(from_schema: dict, from_model: dict) -> None:
    """Equal tables, reported member by member when they are not."""
    differences = {
        path: {"schema": from_schema.get(path), "model": from_model.get(path)}
        for path in sorted(from_schema.keys() | from_model.keys())
        if from_schema.get(path) != from_model.get(path)
    }
    assert not differences, json.dumps(differences, indent=1)


def test_walkers_see_every_kind_of_constraint():
    from_schema = schema_constraints(schemas.INPUTS["PutTrainingJobs"]())
    from_model = model_constraints("PutTrainingJobsRequest")

    for table in (from_schema, from_model):
        assert table["AwsAccountId"] == {
            "type": "string",
            "required": True,
            "min": 12,
            "max": 12,
            "pattern": "^[0-9]{12}$",
        }
        assert table["TrainingJobs"] == {
            "type": "list",
            "required": True,
            "min": 1,
            "max": 1000,
        }
        assert table["TrainingJobs[].TrainingJobStatus"]["enum"] == list(
            schemas.STATUSES
        )
        assert table["TrainingJobs[].HyperParameters"]["max"] == 100
        assert table["TrainingJobs[].HyperParameters{key}"]["max"] == 256
        assert table["TrainingJobs[].RetriedAttempt"]["max"] == 2**31 - 1


def test_model_has_exactly_the_operations_the_server_serves():
    assert set(MODEL["operations"]) == set(schemas.INPUTS) == set(handlers.OPERATIONS)
    for name, operation in MODEL["operations"].items():
        assert operation["name"] == name
        assert operation["http"] == {
            "method": "POST",
            "requestUri": f"/{name}",
            "responseCode": 200,
        }


@pytest.mark.parametrize("operation", sorted(schemas.INPUTS))
def test_model_input_has_the_constraints_of_the_request_schema(operation):
    shape_name = MODEL["operations"][operation]["input"]["shape"]
    assert_same(
        schema_constraints(schemas.INPUTS[operation]()),
        model_constraints(shape_name),
    )


@pytest.mark.parametrize("operation", sorted(schemas.INPUTS))
def test_model_output_has_the_constraints_of_the_response_schema(operation):
    shape_name = MODEL["operations"][operation]["output"]["shape"]
    assert_same(
        schema_constraints(schemas.OUTPUTS[operation]()),
        model_constraints(shape_name),
    )


@pytest.mark.parametrize("operation", sorted(schemas.INPUTS))
def test_model_errors_are_the_errors_the_operation_answers(operation):
    listed = {error["shape"] for error in MODEL["operations"][operation]["errors"]}
    answered = {kind.code for kind in openapi.operation_errors(operation)}
    assert listed == answered


def _error_kinds() -> list[type[errors.ServiceError]]:
    """Every error class that brings its own code (413 reuses ValidationError)."""
    found, pending = [], [errors.ServiceError]
    while pending:
        kind = pending.pop()
        pending += kind.__subclasses__()
        if "code" in vars(kind) and kind is not errors.ServiceError:
            found.append(kind)
    return found


def test_error_shapes_carry_the_code_and_status_the_server_sends():
    answered = {
        kind.code for name in schemas.INPUTS for kind in openapi.operation_errors(name)
    }
    kinds = {kind.code: kind for kind in _error_kinds()}
    shapes = {name for name, shape in SHAPES.items() if shape.get("exception")}

    assert answered <= shapes
    for name in shapes:
        shape = SHAPES[name]
        assert shape["error"]["code"] == name
        assert shape["error"]["httpStatusCode"] == kinds[name].status
        assert set(shape["members"]) == {"message"}


def test_every_shape_and_member_is_documented():
    assert MODEL["documentation"]
    for name, operation in MODEL["operations"].items():
        assert operation["documentation"], name
    # Requests and responses are documented through their operation.
    wrappers = {
        operation[part]["shape"]
        for operation in MODEL["operations"].values()
        for part in ("input", "output")
    }
    for name, shape in SHAPES.items():
        assert name in wrappers or shape.get("documentation"), name
        for member, reference in shape.get("members", {}).items():
            if not shape.get("exception"):
                assert reference.get("documentation"), f"{name}.{member}"


def test_paginator_names_members_of_the_operation():
    for operation, paginator in PAGINATORS["pagination"].items():
        spec = MODEL["operations"][operation]
        request = SHAPES[spec["input"]["shape"]]["members"]
        response = SHAPES[spec["output"]["shape"]]["members"]
        assert paginator["input_token"] in request
        assert paginator["limit_key"] in request
        assert paginator["output_token"] in response
        assert SHAPES[response[paginator["result_key"]]["shape"]]["type"] == "list"


def test_model_metadata_names_the_service_as_clients_sign_it():
    metadata = MODEL["metadata"]
    assert metadata["protocol"] == "rest-json"
    assert metadata["apiVersion"] == model.API_VERSION
    assert metadata["signatureVersion"] == "v4"
    assert metadata["signingName"] == model.SERVICE_NAME
    assert metadata["endpointPrefix"] == model.SERVICE_NAME
    assert metadata["serviceId"]
