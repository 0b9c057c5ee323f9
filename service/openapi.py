"""The OpenAPI 3 document, generated from the schemas that validate requests."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from typing import Any

import orjson
from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields, validate

from . import __version__, errors, guards, handlers, schemas

log = logging.getLogger("service.openapi")

OPENAPI_VERSION = "3.1.0"
REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"

# Errors any operation may answer, whatever it does.
_COMMON_ERRORS: tuple[type[errors.ServiceError], ...] = (
    errors.ValidationError,
    errors.PayloadTooLarge,
    guards.RequestTimeout,
    errors.AccessForbidden,
    errors.Throttling,
    errors.InternalFailure,
    errors.ServiceUnavailable,
)
# Errors that follow from what an operation does with its tuning job.
_OWN_ERRORS: dict[str, tuple[type[errors.ServiceError], ...]] = {
    "ListTrainingJobsForTuningJob": (errors.ResourceNotFound,),
    "CreateTuningJob": (errors.ResourceInUse,),
    "PutTrainingJobs": (errors.ResourceNotFound,),
    "DeleteTuningJob": (errors.ResourceNotFound,),
    "DescribeTuningJob": (errors.ResourceNotFound,),
}

_DESCRIPTION = (
    "Every operation is `POST /<OperationName>` with a JSON object body and "
    "answers a JSON object. Errors carry the HTTP status, an `x-amzn-ErrorType` "
    'header and a body `{"__type": "<Code>", "message": "..."}`.'
)


def operation_errors(operation: str) -> tuple[type[errors.ServiceError], ...]:
    """The errors `operation` may answer, each with its code and status."""
    return _COMMON_ERRORS + _OWN_ERRORS.get(operation, ())


async def serve_document(request: web.Request) -> web.Response:
    """GET /openapi.json: the document, built on first use and then reused."""
    return web.Response(body=document_bytes(), content_type="application/json")


@functools.cache
def document_bytes() -> bytes:
    """The document in wire form; generated once per process."""
    document = build_document()
    log.debug("openapi document built", extra={"paths": len(document["paths"])})
    return orjson.dumps(document)


def build_document() -> dict[str, Any]:
    """Describe every operation, its request, its answer and its errors."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="sagemakerhpo",
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": _DESCRIPTION},
    )
    assert plugin.converter is not None  # set by APISpec when it registers it
    plugin.converter.add_attribute_function(_ecma_constraints)
    spec.components.schema("Error", schema=schemas.ErrorOutput)

    for name, handler in handlers.OPERATIONS.items():
        spec.path(path=f"/{name}", operations={"post": _operation(name, handler)})
    return spec.to_dict()


def _operation(name: str, handler: Any) -> dict[str, Any]:
    summary = (handler.__doc__ or name).splitlines()[0]
    ok = {
        "description": "The operation succeeded.",
        "headers": {REQUEST_ID_HEADER: _request_id_header()},
        "content": {"application/json": {"schema": schemas.OUTPUTS[name]}},
    }
    return {
        "operationId": name,
        "summary": summary,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schemas.INPUTS[name]}},
        },
        "responses": {"200": ok, **_error_responses(name)},
    }


def _error_responses(operation: str) -> dict[str, Any]:
    by_status: dict[int, list[type[errors.ServiceError]]] = defaultdict(list)
    for kind in operation_errors(operation):
        by_status[kind.status].append(kind)
    return {
        str(status): _error_response(kinds)
        for status, kinds in sorted(by_status.items())
    }


def _error_response(kinds: list[type[errors.ServiceError]]) -> dict[str, Any]:
    codes = sorted({kind.code for kind in kinds})
    code_schema = {"type": "string", "enum": codes}
    return {
        "description": " ".join(f"{kind.code}: {kind.__doc__}" for kind in kinds),
        "headers": {
            REQUEST_ID_HEADER: _request_id_header(),
            ERROR_TYPE_HEADER: {
                "description": "The error's code, as in the body's `__type`.",
                "required": True,
                "schema": code_schema,
            },
        },
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        "Error",
                        {"type": "object", "properties": {"__type": code_schema}},
                    ]
                }
            }
        },
    }


def _request_id_header() -> dict[str, Any]:
    return {
        "description": "A fresh id for this request, also in the service's logs.",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }


def _ecma_constraints(
    self: Any, field: fields.Field, ret: dict[str, Any], **_: Any
) -> dict[str, Any]:
    """Constraints apispec spells for Python, spelled for JSON Schema instead.

    Patterns end in `\\Z` for Python's `re` (where `$` also matches before a
    final newline), which ECMA regular expressions do not know: their `$`
    already means the very end. A map's size limits are property counts, and
    its key lengths go under `propertyNames`.
    """
    update: dict[str, Any] = {}
    for rule in field.validators:
        if isinstance(rule, validate.Regexp):
            update["pattern"] = _ecma_pattern(rule.regex.pattern)
    if isinstance(field, fields.Dict):
        for length, count in (
            ("minLength", "minProperties"),
            ("maxLength", "maxProperties"),
        ):
            if length in ret:
                update[count] = ret.pop(length)
        if field.key_field is not None:
            names = self.field2property(field.key_field)
            names.pop("type", None)
            if names:
                update["propertyNames"] = names
    return update


def _ecma_pattern(pattern: str) -> str:
    if pattern.endswith(r"\Z"):
        return pattern.removesuffix(r"\Z") + "$"
    return pattern
