"""One coroutine per operation: parse, validate, query, shape."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from . import errors, guards, schemas, storage, tokens
from .keys import ACCOUNT, SETTINGS, STORAGE

_LIST_INPUT = schemas.INPUTS["ListTrainingJobsForTuningJob"]()
_CREATE_INPUT = schemas.INPUTS["CreateTuningJob"]()
_PUT_INPUT = schemas.INPUTS["PutTrainingJobs"]()
_DELETE_INPUT = schemas.INPUTS["DeleteTuningJob"]()
_ALL_STATUSES = tuple(range(len(schemas.STATUSES)))
_EMPTY = b"{}"


async def list_training_jobs(request: web.Request) -> web.Response:
    """ListTrainingJobsForTuningJob: one page, in the order and filter asked."""
    params = await _input(request, _LIST_INPUT)
    secret = request.app[SETTINGS].token_secret
    by_score = "sort_by" in params
    query = _query_identity(params)
    cursor = tokens.Cursor("")
    if params.get("next_token"):
        cursor = tokens.read(secret, query, params["next_token"])

    limit = params["max_results"]
    status = params.get("status")
    page = await _or_not_found(
        request.app[STORAGE].list_page(
            params["account"],
            params["tuning_job"],
            by_score=by_score,
            descending=params["sort_order"] == "Descending",
            statuses=(schemas.STATUSES.index(status),) if status else _ALL_STATUSES,
            limit=limit + 1,
            after=cursor.name,
            after_score=cursor.score,
        ),
        params["tuning_job"],
    )

    rows = page.rows[:limit]
    parts = [storage.split_record(stored) for _, stored in rows]
    next_token = None
    if len(page.rows) > limit:
        last_score = float(parts[-1][2]) if by_score else None
        last = tokens.Cursor(rows[-1][0].decode(), last_score)
        next_token = tokens.issue(secret, query, last)

    items = schemas.summaries(
        zip([name for name, _ in rows], parts, strict=True),
        page.metric_name,
        page.objective_type,
    )
    return _json(schemas.summaries_page(items, next_token))


async def create_tuning_job(request: web.Request) -> web.Response:
    """CreateTuningJob: idempotent for the same objective."""
    params = await _input(request, _CREATE_INPUT)
    try:
        await request.app[STORAGE].create_tuning_job(
            params["account"],
            params["tuning_job"],
            params["metric_name"],
            params["objective_type"],
        )
    except storage.Conflict:
        raise errors.ResourceInUse(
            f"Tuning job '{params['tuning_job']}' already exists with another objective"
        ) from None
    return _json(_EMPTY)


async def put_training_jobs(request: web.Request) -> web.Response:
    """PutTrainingJobs: upsert a whole batch, atomically."""
    params = await _input(request, _PUT_INPUT)
    jobs = [
        storage.TrainingJob(
            name=job["name"],
            status=schemas.STATUSES.index(job["status"]),
            hyperparameters=job["hyperparameters"],
            retried_attempt=job["retried_attempt"],
            value=job.get("value"),
        )
        for job in params["training_jobs"]
    ]
    written = await _or_not_found(
        request.app[STORAGE].put_training_jobs(
            params["account"], params["tuning_job"], jobs
        ),
        params["tuning_job"],
    )
    return _json(schemas.put_result(written))


async def delete_tuning_job(request: web.Request) -> web.Response:
    """DeleteTuningJob: the tuning job and all of its training jobs."""
    params = await _input(request, _DELETE_INPUT)
    await _or_not_found(
        request.app[STORAGE].delete_tuning_job(params["account"], params["tuning_job"]),
        params["tuning_job"],
    )
    return _json(_EMPTY)


# Fault injection (applied to requests by guards.py) and discovery.

_PUT_FAULTS_INPUT = schemas.INPUTS["PutFaultInjection"]()
_ACCOUNT_INPUT = schemas.INPUTS["GetFaultInjection"]()
_LIST_TUNING_JOBS_INPUT = schemas.INPUTS["ListTuningJobs"]()
_DESCRIBE_INPUT = schemas.INPUTS["DescribeTuningJob"]()


async def put_fault_injection(request: web.Request) -> web.Response:
    """PutFaultInjection: replace the account's fault config."""
    _fault_injection_enabled(request)
    params = await _input(request, _PUT_FAULTS_INPUT)
    await request.app[STORAGE].accounts.put_faults(
        params["account"], guards.encode_faults(params), params.get("expires_in_s")
    )
    return _json(_EMPTY)


async def get_fault_injection(request: web.Request) -> web.Response:
    """GetFaultInjection: the account's fault config, `{}` when it has none."""
    _fault_injection_enabled(request)
    params = await _input(request, _ACCOUNT_INPUT)
    accounts = request.app[STORAGE].accounts
    raw, ttl_s = await accounts.faults_with_ttl(params["account"])
    if raw is None:
        return _json(_EMPTY)
    faults = guards.decode_faults(raw)
    expires_in_s = ttl_s if ttl_s > 0 else None
    return _json(schemas.fault_config(faults.rules, faults.latency_ms, expires_in_s))


async def delete_fault_injection(request: web.Request) -> web.Response:
    """DeleteFaultInjection: remove the account's fault config, if any."""
    _fault_injection_enabled(request)
    params = await _input(request, _ACCOUNT_INPUT)
    await request.app[STORAGE].accounts.delete_faults(params["account"])
    return _json(_EMPTY)


async def list_tuning_jobs(request: web.Request) -> web.Response:
    """ListTuningJobs: the account's tuning jobs by name, paged."""
    params = await _input(request, _LIST_TUNING_JOBS_INPUT)
    secret = request.app[SETTINGS].token_secret
    query = b"ListTuningJobs\0" + params["account"].encode()
    after = ""
    if params.get("next_token"):
        after = tokens.read(secret, query, params["next_token"]).name

    found, more, last = await request.app[STORAGE].accounts.tuning_jobs(
        params["account"], params["max_results"], after
    )
    next_token = tokens.issue(secret, query, tokens.Cursor(last)) if more else None
    return _json(schemas.tuning_jobs_page(found, next_token))


async def describe_tuning_job(request: web.Request) -> web.Response:
    """DescribeTuningJob: objective, jobs per status, the best training job."""
    params = await _input(request, _DESCRIBE_INPUT)
    tuning_job = params["tuning_job"]
    found = await _or_not_found(
        request.app[STORAGE].accounts.describe(params["account"], tuning_job),
        tuning_job,
    )
    best = None
    if found.best is not None:
        name, stored = found.best
        objective = schemas.objective_prefix(found.metric_name, found.objective_type)
        best = schemas.summary(name, *storage.split_record(stored), objective)
    return _json(
        schemas.description(
            tuning_job, found.metric_name, found.objective_type, found.counts, best
        )
    )


def _fault_injection_enabled(request: web.Request) -> None:
    if not request.app[SETTINGS].fault_injection:
        raise errors.AccessForbidden(
            "Fault injection is not enabled on this deployment"
        )


# Every operation's handler, by operation name (the keys of schemas.INPUTS).
OPERATIONS = {
    "ListTrainingJobsForTuningJob": list_training_jobs,
    "CreateTuningJob": create_tuning_job,
    "PutTrainingJobs": put_training_jobs,
    "DeleteTuningJob": delete_tuning_job,
    "PutFaultInjection": put_fault_injection,
    "GetFaultInjection": get_fault_injection,
    "DeleteFaultInjection": delete_fault_injection,
    "ListTuningJobs": list_tuning_jobs,
    "DescribeTuningJob": describe_tuning_job,
}


async def _input(request: web.Request, schema: Any) -> dict[str, Any]:
    body = await request.read()
    try:
        decoded = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise errors.ValidationError("Request body is not valid JSON") from None
    params = schemas.load(schema, decoded)
    # Kept for the access log line, which must not parse the body again.
    request[ACCOUNT] = params["account"]
    return params


def _query_identity(params: dict[str, Any]) -> bytes:
    """What a NextToken is bound to: everything but MaxResults and the token."""
    fields = (
        params["account"],
        params["tuning_job"],
        params.get("sort_by", ""),
        params["sort_order"],
        params.get("status", ""),
    )
    return "\0".join(fields).encode()


async def _or_not_found(pending: Any, tuning_job: str) -> Any:
    try:
        return await pending
    except storage.NotFound:
        raise errors.ResourceNotFound(
            f"Tuning job '{tuning_job}' does not exist"
        ) from None


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")
