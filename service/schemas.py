"""Request schemas and response shapes: the only module that spells AWS names."""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from marshmallow import (
    RAISE,
    Schema,
    fields,
    missing,
    validate,
    validates,
    validates_schema,
)
from marshmallow import ValidationError as SchemaError

from . import errors

STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
SORT_BY_METRIC = "FinalObjectiveMetricValue"
SORT_ORDERS = ("Ascending", "Descending")
OBJECTIVE_TYPES = ("Minimize", "Maximize")

TUNING_JOB_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
TRAINING_JOB_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
ACCOUNT_PATTERN = "^[0-9]{12}$"
MAX_NEXT_TOKEN_CHARS = 8192
MAX_RETRIED_ATTEMPT = 2**31 - 1

_NOT_NULL = "Member must not be null"
_VALUE_CHARS_SHOWN = 128


def _type_errors(kind: str) -> dict[str, str]:
    return {
        "required": _NOT_NULL,
        "null": _NOT_NULL,
        "invalid": f"Member must be of type {kind}",
        "type": f"Member must be of type {kind}",
    }


def _length(low: int | None = None, high: int | None = None) -> list:
    rules = []
    if low is not None:
        message = f"Member must have length greater than or equal to {low}"
        rules.append(validate.Length(min=low, error=message))
    if high is not None:
        message = f"Member must have length less than or equal to {high}"
        rules.append(validate.Length(max=high, error=message))
    return rules


def _range(low: int | None = None, high: int | None = None) -> list:
    rules = []
    if low is not None:
        message = f"Member must have value greater than or equal to {low}"
        rules.append(validate.Range(min=low, error=message))
    if high is not None:
        message = f"Member must have value less than or equal to {high}"
        rules.append(validate.Range(max=high, error=message))
    return rules


def _pattern(shown: str) -> validate.Regexp:
    # `$` also matches before a trailing newline; `\Z` anchors at the very end.
    anchored = shown.removesuffix("$") + r"\Z"
    message = f"Member must satisfy regular expression pattern: {shown}"
    # marshmallow formats error texts with str.format: keep the braces literal.
    message = message.replace("{", "{{").replace("}", "}}")
    return validate.Regexp(anchored, error=message)


def _one_of(choices: tuple[str, ...]) -> validate.OneOf:
    message = f"Member must satisfy enum value set: [{', '.join(choices)}]"
    return validate.OneOf(choices, error=message)


def _string(key: str, *rules: Any, **options: Any) -> fields.String:
    return fields.String(
        data_key=key,
        validate=list(rules),
        error_messages=_type_errors("string"),
        **options,
    )


def _integer(key: str, *rules: Any, **options: Any) -> fields.Integer:
    return fields.Integer(
        data_key=key,
        strict=True,
        validate=list(rules),
        error_messages=_type_errors("integer"),
        **options,
    )


class _FiniteNumber(fields.Float):
    """A JSON number: not a string, not a boolean, never NaN or infinite."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        number = float(value)
        if not math.isfinite(number):
            raise self.make_error("special")
        return number


class _Input(Schema):
    """Base of every operation's input: unknown members are refused."""

    class Meta:
        unknown = RAISE

    error_messages = {  # noqa: RUF012 - marshmallow reads this class attribute
        "unknown": "Member is not defined in the input shape",
        "type": "Member must be of type structure",
    }


def _account() -> fields.String:
    return _string(
        "AwsAccountId", *_length(12, 12), _pattern(ACCOUNT_PATTERN), required=True
    )


def _tuning_job() -> fields.String:
    return _string(
        "TuningJobName", *_length(1, 32), _pattern(TUNING_JOB_PATTERN), required=True
    )


def _training_job_name() -> fields.String:
    return _string(
        "TrainingJobName",
        *_length(1, 63),
        _pattern(TRAINING_JOB_PATTERN),
        required=True,
    )


def _training_job_status(
    key: str = "TrainingJobStatus", **options: Any
) -> fields.String:
    return _string(key, _one_of(STATUSES), **options)


def _hyperparameters(**options: Any) -> fields.Dict:
    return fields.Dict(
        data_key="HyperParameters",
        keys=_string("", *_length(high=256)),
        values=_string("", *_length(high=256)),
        validate=_length(high=100),
        **options,
    )


def _retried_attempt(**options: Any) -> fields.Integer:
    return _integer("RetriedAttempt", *_range(0, MAX_RETRIED_ATTEMPT), **options)


def _metric_name(key: str) -> fields.String:
    return _string(key, *_length(1, 255), required=True)


def _objective_type(key: str) -> fields.String:
    return _string(key, _one_of(OBJECTIVE_TYPES), required=True)


class TuningJobRef(_Input):
    """Names one tuning job of one account."""

    account = _account()
    tuning_job = _tuning_job()


class ListTrainingJobsInput(TuningJobRef):
    """ListTrainingJobsForTuningJob input."""

    max_results = _integer("MaxResults", *_range(1, 100), load_default=10)
    next_token = _string("NextToken", *_length(high=MAX_NEXT_TOKEN_CHARS))
    sort_by = _string("SortBy", _one_of((SORT_BY_METRIC,)))
    sort_order = _string("SortOrder", _one_of(SORT_ORDERS), load_default="Ascending")
    status = _training_job_status("TrainingJobStatusEquals")


class CreateTuningJobInput(TuningJobRef):
    """CreateTuningJob input."""

    metric_name = _metric_name("ObjectiveMetricName")
    objective_type = _objective_type("ObjectiveType")


class TrainingJobInput(_Input):
    """One training job of a PutTrainingJobs batch."""

    name = _training_job_name()
    status = _training_job_status(required=True)
    hyperparameters = _hyperparameters(
        load_default=dict, error_messages=_type_errors("map")
    )
    retried_attempt = _retried_attempt(load_default=0)
    value = _FiniteNumber(
        data_key="FinalObjectiveMetricValue",
        error_messages={
            **_type_errors("number"),
            "special": "Member must be a finite number",
        },
    )


class PutTrainingJobsInput(TuningJobRef):
    """PutTrainingJobs input: a batch written whole or not at all."""

    training_jobs = fields.List(
        fields.Nested(TrainingJobInput, unknown=RAISE),
        data_key="TrainingJobs",
        required=True,
        validate=_length(1, 1000),
        error_messages=_type_errors("list"),
    )

    @validates("training_jobs")
    def _names_unique(self, jobs: list[dict], **_: Any) -> None:
        # Runs on the items that passed their own checks, which may lack a name.
        seen: set[str] = set()
        for job in jobs:
            name = job.get("name") if isinstance(job, dict) else None
            if name in seen:
                raise SchemaError(f"Member must not name training job '{name}' twice")
            if name is not None:
                seen.add(name)


DeleteTuningJobInput = TuningJobRef


# Fault injection, and discovering an account's tuning jobs.

FAULT_CODES = ("Throttling", "ServiceUnavailable", "InternalFailure")
# Never injected into, so that a config can always be read and removed.
FAULT_OPERATIONS = ("PutFaultInjection", "GetFaultInjection", "DeleteFaultInjection")
MAX_FAULT_RULES = 20
MAX_LATENCY_MS = 10_000
MAX_FAULT_TTL_S = 7 * 24 * 3600


class AccountRef(_Input):
    """Names one account."""

    account = _account()


class FaultRuleInput(_Input):
    """One rule: fail an operation (or any) with an error, at a probability."""

    operation = _string("Operation", *_length(1, 64))
    error_code = _string("ErrorCode", _one_of(FAULT_CODES), required=True)
    probability = _FiniteNumber(
        data_key="Probability",
        required=True,
        validate=_range(0, 1),
        error_messages={
            **_type_errors("number"),
            "special": "Member must be a finite number",
        },
    )

    @validates("operation")
    def _known(self, name: str, **_: Any) -> None:
        if name not in INPUTS or name in FAULT_OPERATIONS:
            raise SchemaError(
                "Member must name an operation of this service other than "
                "the fault injection ones"
            )


class LatencyInput(_Input):
    """Added latency, drawn evenly between Min and Max milliseconds."""

    min_ms = _integer("Min", *_range(0, MAX_LATENCY_MS), required=True)
    max_ms = _integer("Max", *_range(0, MAX_LATENCY_MS), required=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data["min_ms"] > data["max_ms"]:
            raise SchemaError("Member Min must be less than or equal to Max")


class PutFaultInjectionInput(AccountRef):
    """PutFaultInjection input: replaces the account's whole config."""

    rules = fields.List(
        fields.Nested(FaultRuleInput, unknown=RAISE),
        data_key="Rules",
        required=True,
        validate=_length(0, MAX_FAULT_RULES),
        error_messages=_type_errors("list"),
    )
    latency = fields.Nested(
        LatencyInput,
        data_key="LatencyMs",
        unknown=RAISE,
        error_messages=_type_errors("structure"),
    )
    expires_in_s = _integer("ExpiresInSeconds", *_range(1, MAX_FAULT_TTL_S))


class ListTuningJobsInput(AccountRef):
    """ListTuningJobs input."""

    max_results = _integer("MaxResults", *_range(1, 100), load_default=10)
    next_token = _string("NextToken", *_length(high=MAX_NEXT_TOKEN_CHARS))


DescribeTuningJobInput = TuningJobRef

# Every operation's input schema, by operation name.
INPUTS: dict[str, type[Schema]] = {
    "ListTrainingJobsForTuningJob": ListTrainingJobsInput,
    "CreateTuningJob": CreateTuningJobInput,
    "PutTrainingJobs": PutTrainingJobsInput,
    "DeleteTuningJob": DeleteTuningJobInput,
    "PutFaultInjection": PutFaultInjectionInput,
    "GetFaultInjection": AccountRef,
    "DeleteFaultInjection": AccountRef,
    "ListTuningJobs": ListTuningJobsInput,
    "DescribeTuningJob": DescribeTuningJobInput,
}


def load(schema: Schema, body: Any) -> dict[str, Any]:
    """Validate a decoded request body; raise an AWS-shaped ValidationError."""
    if not isinstance(body, dict):
        raise errors.ValidationError("Request body must be a JSON object")
    fast = _fast_loader(schema)
    if fast is not None:
        loaded = fast(body)
        if loaded is not None:
            return loaded
    try:
        return schema.load(body)
    except SchemaError as problem:
        found: list[str] = []
        _collect(schema, problem.messages, body, "", found)
        raise errors.ValidationError(_summary(found)) from None


# A valid body of a flat schema is loaded without marshmallow's machinery,
# which costs tens of microseconds a request. The fast loader is derived from
# the schema's own fields and validators and gives up (returns None) on
# anything it does not accept outright, so marshmallow then loads the body and
# words every error: results and messages cannot differ.
_FAST_KINDS: dict[type, type] = {fields.String: str, fields.Integer: int}
_FAST_LOADERS: weakref.WeakKeyDictionary[Schema, Any] = weakref.WeakKeyDictionary()
_MISSING = object()


def _fast_loader(schema: Schema) -> Any:
    """The schema's fast loader, or None when it has fields or hooks beyond it."""
    try:
        return _FAST_LOADERS[schema]
    except KeyError:
        pass
    loader = _build_fast_loader(schema)
    _FAST_LOADERS[schema] = loader
    return loader


def _build_fast_loader(schema: Schema) -> Any:
    if any(schema._hooks.values()) or schema.unknown != RAISE or schema.partial:
        return None
    specs = []
    for name, field in schema.load_fields.items():
        kind = _FAST_KINDS.get(type(field))
        if kind is None or field.dump_only or field.allow_none:
            return None
        default = field.load_default
        specs.append(
            (field.data_key or name, name, kind, field.required, default,
             tuple(field.validators))
        )  # fmt: skip
    known = frozenset(key for key, *_ in specs)

    def fast(body: dict[str, Any]) -> dict[str, Any] | None:
        if not known.issuperset(body):
            return None
        loaded: dict[str, Any] = {}
        for key, name, kind, required, default, validators in specs:
            value = body.get(key, _MISSING)
            if value is _MISSING:
                if required:
                    return None
                if default is not missing:
                    loaded[name] = default() if callable(default) else default
                continue
            if type(value) is not kind:  # bool is not int here
                return None
            try:
                for validator in validators:
                    validator(value)
            except SchemaError:
                return None
            loaded[name] = value
        return loaded

    return fast


def _summary(found: list[str]) -> str:
    count = len(found)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(found)


def _collect(
    schema: Schema, messages: Any, data: Any, path: str, found: list[str]
) -> None:
    """Flatten marshmallow's nested messages into AWS's one-line phrases."""
    by_key = {field.data_key or name: field for name, field in schema.fields.items()}
    for key, detail in messages.items():
        if key == "_schema":
            found.extend(_phrase(data, path, text) for text in detail)
            continue
        field = by_key.get(key)
        value = data.get(key) if isinstance(data, Mapping) else None
        where = _join(path, key[:1].lower() + key[1:])
        if isinstance(detail, list):
            found.extend(_phrase(value, where, text) for text in detail)
        elif isinstance(field, fields.List):
            _collect_items(field, detail, value, where, found)
        elif isinstance(field, fields.Dict):
            _collect_map(detail, value, where, found)
        elif isinstance(field, fields.Nested) and isinstance(detail, dict):
            _collect(field.schema, detail, value, where, found)


def _collect_items(
    field: fields.List, messages: dict, items: Any, path: str, found: list[str]
) -> None:
    inner = field.inner
    for index, detail in messages.items():
        if index == "_schema":  # the list's own validators, beside its items'
            found.extend(_phrase(items, path, text) for text in detail)
            continue
        item = items[index] if isinstance(items, list) else None
        where = _join(path, f"{index + 1}.member")
        if isinstance(inner, fields.Nested) and isinstance(detail, dict):
            _collect(inner.schema, detail, item, where, found)
        else:
            found.extend(_phrase(item, where, text) for text in detail)


def _collect_map(messages: dict, mapping: Any, path: str, found: list[str]) -> None:
    for entry, detail in messages.items():
        for part in ("key", "value"):
            shown = entry if part == "key" else mapping.get(entry)
            for text in detail.get(part, ()):
                label = "Map keys" if part == "key" else "Map value"
                constraint = f"{label} must satisfy constraint: [{text}]"
                found.append(_phrase(shown, path, constraint))


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _phrase(value: Any, path: str, constraint: str) -> str:
    shown = _show(value)
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        try:
            text = orjson.dumps(value).decode()
        except orjson.JSONEncodeError:  # nested deeper than orjson writes
            text = "[...]" if isinstance(value, list) else "{...}"
    if len(text) > _VALUE_CHARS_SHOWN:
        text = text[: _VALUE_CHARS_SHOWN - 3] + "..."
    return f"'{text}'"


# Response shapes.  Summaries are stored as a compact record and joined into
# their wire form here, without decoding JSON on the read path.


def objective_prefix(metric_name: str, objective_type: str) -> bytes:
    """The start of FinalTuningJobObjectiveMetric, shared by a tuning job's jobs."""
    return (
        b',"FinalTuningJobObjectiveMetric":{"MetricName":'
        + orjson.dumps(metric_name)
        + b',"Type":"'
        + objective_type.encode()
        + b'","Value":'
    )


_STATUS_WIRE = tuple(
    b'{"TrainingJobName":"%s","TrainingJobStatus":"' + status.encode() + b'"'
    for status in STATUSES
)


def summary(
    name: bytes,
    status: bytes,
    retried: bytes,
    value: bytes,
    hyperparameters: bytes,
    objective: bytes,
) -> bytes:
    """One TrainingJobSummary in wire form, from the parts of its record.

    `status` is the status code as one ASCII digit; `value` is empty for a job
    without a final objective value; the rest are already JSON.
    """
    head = _STATUS_WIRE[status[0] - 48] % name
    tail = objective + value + b"}}" if value else b"}"
    return (
        head
        + b',"HyperParameters":'
        + hyperparameters
        + b',"RetriedAttempt":'
        + retried
        + tail
    )


def summaries(
    rows: Iterable[tuple[bytes, Sequence[bytes]]], metric_name: str, objective_type: str
) -> list[bytes]:
    """Each row's summary, the same bytes as `summary` gives, built faster.

    A row is a training job's name and its record's parts, in the order
    `summary` takes them. One format per job, with the objective already in
    the template, instead of a concatenation per member: pages of 100 are the
    hot path.
    """
    valued, plain = _summary_templates(metric_name, objective_type)
    items = []
    for name, (status, retried, value, hyperparameters) in rows:
        if value:
            item = valued[status[0] - 48] % (name, hyperparameters, retried, value)
        else:
            item = plain[status[0] - 48] % (name, hyperparameters, retried)
        items.append(item)
    return items


@functools.lru_cache(maxsize=1024)
def _summary_templates(
    metric_name: str, objective_type: str
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Per status code, the summary with and without a value, as %-templates."""
    objective = objective_prefix(metric_name, objective_type).replace(b"%", b"%%")
    heads = [
        wire + b',"HyperParameters":%s,"RetriedAttempt":%s' for wire in _STATUS_WIRE
    ]
    valued = tuple(head + objective + b"%s}}" for head in heads)
    return valued, tuple(head + b"}" for head in heads)


def summaries_page(items: list[bytes], next_token: str | None) -> bytes:
    """The ListTrainingJobsForTuningJob response body."""
    body = b'{"TrainingJobSummaries":[' + b",".join(items) + b"]"
    if next_token is not None:
        body += b',"NextToken":"' + next_token.encode() + b'"'
    return body + b"}"


def put_result(count: int) -> bytes:
    """The PutTrainingJobs response body."""
    return orjson.dumps({"TrainingJobCount": count})


def fault_config(
    rules: Sequence[tuple[str, str, float]],
    latency_ms: tuple[int, int] | None,
    expires_in_s: int | None,
) -> bytes:
    """The GetFaultInjection response body; a rule's operation "" means any."""
    body: dict[str, Any] = {
        "Rules": [
            {
                **({"Operation": operation} if operation else {}),
                "ErrorCode": code,
                "Probability": probability,
            }
            for operation, code, probability in rules
        ]
    }
    if latency_ms is not None:
        body["LatencyMs"] = {"Min": latency_ms[0], "Max": latency_ms[1]}
    if expires_in_s is not None:
        body["ExpiresInSeconds"] = expires_in_s
    return orjson.dumps(body)


def tuning_jobs_page(
    items: list[tuple[str, str, str]], next_token: str | None
) -> bytes:
    """The ListTuningJobs response body: (name, metric, type) per tuning job."""
    body: dict[str, Any] = {
        "TuningJobSummaries": [
            {
                "TuningJobName": name,
                "ObjectiveMetricName": metric,
                "ObjectiveType": kind,
            }
            for name, metric, kind in items
        ]
    }
    if next_token is not None:
        body["NextToken"] = next_token
    return orjson.dumps(body)


def description(
    tuning_job: str,
    metric_name: str,
    objective_type: str,
    counts: list[int],
    best: bytes | None,
) -> bytes:
    """The DescribeTuningJob response body; `best` is a summary in wire form."""
    head = orjson.dumps(
        {
            "TuningJobName": tuning_job,
            "ObjectiveMetricName": metric_name,
            "ObjectiveType": objective_type,
            "TrainingJobStatusCounters": dict(zip(STATUSES, counts, strict=True)),
        }
    )
    if best is None:
        return head
    return head[:-1] + b',"BestTrainingJob":' + best + b"}"


# Response schemas, for documentation.  Handlers build response bodies as bytes
# above; these schemas describe those bodies in the OpenAPI document, beside the
# input schemas that validate requests.


class ObjectiveMetricOutput(Schema):
    """FinalTuningJobObjectiveMetric: the tuning job's objective and its value."""

    metric_name = _metric_name("MetricName")
    objective_type = _objective_type("Type")
    value = _FiniteNumber(data_key="Value", required=True)


class TrainingJobSummaryOutput(Schema):
    """One listed training job; the objective only when it has a final value."""

    name = _training_job_name()
    status = _training_job_status(required=True)
    hyperparameters = _hyperparameters(required=True)
    retried_attempt = _retried_attempt(required=True)
    objective = fields.Nested(
        ObjectiveMetricOutput, data_key="FinalTuningJobObjectiveMetric"
    )


class ListTrainingJobsOutput(Schema):
    """ListTrainingJobsForTuningJob output: NextToken only while more follow."""

    summaries = fields.List(
        fields.Nested(TrainingJobSummaryOutput),
        data_key="TrainingJobSummaries",
        required=True,
    )
    next_token = _string("NextToken", *_length(high=MAX_NEXT_TOKEN_CHARS))


class PutTrainingJobsOutput(Schema):
    """PutTrainingJobs output: how many training jobs the batch wrote."""

    count = _integer("TrainingJobCount", *_range(1, 1000), required=True)


class EmptyOutput(Schema):
    """The output of an operation that answers `{}`."""


class ErrorOutput(Schema):
    """Every error's body, as botocore's rest-json parser reads it."""

    code = _string("__type", required=True)
    message = _string("message", required=True)


class FaultRuleOutput(Schema):
    """One fault rule as GetFaultInjection shows it; no Operation means any."""

    operation = _string("Operation", *_length(1, 64))
    error_code = _string("ErrorCode", _one_of(FAULT_CODES), required=True)
    probability = _FiniteNumber(
        data_key="Probability", validate=_range(0, 1), required=True
    )


class LatencyOutput(Schema):
    """Added latency, in milliseconds, as GetFaultInjection shows it."""

    min_ms = _integer("Min", *_range(0, MAX_LATENCY_MS), required=True)
    max_ms = _integer("Max", *_range(0, MAX_LATENCY_MS), required=True)


class FaultInjectionOutput(Schema):
    """GetFaultInjection output: `{}` when the account has no config."""

    rules = fields.List(
        fields.Nested(FaultRuleOutput),
        data_key="Rules",
        validate=_length(0, MAX_FAULT_RULES),
    )
    latency = fields.Nested(LatencyOutput, data_key="LatencyMs")
    expires_in_s = _integer("ExpiresInSeconds", *_range(1, MAX_FAULT_TTL_S))


class TuningJobSummaryOutput(Schema):
    """One listed tuning job with its objective."""

    tuning_job = _tuning_job()
    metric_name = _metric_name("ObjectiveMetricName")
    objective_type = _objective_type("ObjectiveType")


class ListTuningJobsOutput(Schema):
    """ListTuningJobs output: NextToken only while more follow."""

    summaries = fields.List(
        fields.Nested(TuningJobSummaryOutput),
        data_key="TuningJobSummaries",
        required=True,
    )
    next_token = _string("NextToken", *_length(high=MAX_NEXT_TOKEN_CHARS))


StatusCountersOutput = Schema.from_dict(
    {status: _integer(status, *_range(low=0), required=True) for status in STATUSES},
    name="StatusCountersOutput",
)


class DescribeTuningJobOutput(TuningJobSummaryOutput):
    """DescribeTuningJob output: the best training job only when one has a value."""

    counters = fields.Nested(
        StatusCountersOutput, data_key="TrainingJobStatusCounters", required=True
    )
    best = fields.Nested(TrainingJobSummaryOutput, data_key="BestTrainingJob")


# Every operation's output schema, by operation name (the keys of INPUTS).
OUTPUTS: dict[str, type[Schema]] = {
    "ListTrainingJobsForTuningJob": ListTrainingJobsOutput,
    "CreateTuningJob": EmptyOutput,
    "PutTrainingJobs": PutTrainingJobsOutput,
    "DeleteTuningJob": EmptyOutput,
    "PutFaultInjection": EmptyOutput,
    "GetFaultInjection": FaultInjectionOutput,
    "DeleteFaultInjection": EmptyOutput,
    "ListTuningJobs": ListTuningJobsOutput,
    "DescribeTuningJob": DescribeTuningJobOutput,
}
