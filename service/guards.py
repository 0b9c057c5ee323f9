"""Guards for a shared deployment: body limits, SigV4, throttling, faults.

One middleware, placed after `middleware.aws_errors` so that what it raises
gets the AWS error shape and the request id. With authentication off,
throttling off and fault injection off (the defaults), it adds no Redis
round trip: it only bounds the size of the body and the time to read it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from . import auth, errors, middleware, observability, schemas
from .keys import REQUEST_ID, STORAGE
from .settings import Settings

log = logging.getLogger("service.guards")

# Operations whose bodies are small whatever HPO_MAX_BODY_BYTES allows; the
# others (PutTrainingJobs) may use all of it.
SMALL_BODY_BYTES = 64 * 1024
SMALL_BODY_OPERATIONS = frozenset(
    {
        "ListTrainingJobsForTuningJob",
        "CreateTuningJob",
        "DeleteTuningJob",
        "ListTuningJobs",
        "DescribeTuningJob",
        *schemas.FAULT_OPERATIONS,
    }
)
# aiohttp's HTTP parser refuses longer request lines and header fields, and
# more header fields, with a 400 before the application sees the request.
MAX_LINE_BYTES = 4096
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 64
# After answering a request whose body did not all arrive, aiohttp reads and
# drops the rest for this long before closing (its default is 10 seconds).
LINGER_S = 1.0

# The real errors' texts: an injected error must read exactly the same.
THROTTLED_MESSAGE = "Rate exceeded"
UNAVAILABLE_MESSAGE = "The service cannot reach its store; retry"
_TOO_LARGE_MESSAGE = "Request body is larger than this operation accepts"
_ACCOUNT = re.compile(r"[0-9]{12}\Z")


class RequestTimeout(errors.ServiceError):
    """The client did not send its whole body in time."""

    code = "RequestTimeout"
    status = 408


@dataclass
class Guards:
    """The guards' state: the key ring, and the seams tests replace."""

    settings: Settings
    verifier: auth.Verifier | None = None
    # Seconds since the epoch; None means time.time() for signatures and the
    # Redis server's own clock for throttling (shared by every replica).
    clock: Callable[[], float] | None = None
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Any] = asyncio.sleep

    @property
    def active(self) -> bool:
        """Whether a request needs more than the body limits."""
        settings = self.settings
        return bool(self.verifier or settings.throttle_rate or settings.fault_injection)


GUARDS: web.AppKey[Guards] = web.AppKey("guards")


def burst_of(settings: Settings) -> int:
    """HPO_THROTTLE_BURST, or by default one second's worth of requests."""
    return settings.throttle_burst or max(1, math.ceil(settings.throttle_rate))


def install(app: web.Application, settings: Settings) -> None:
    """Set up the guards' state, and SIGHUP reloads of the credentials."""
    verifier = None
    if settings.auth == "sigv4":
        # Fail closed: sigv4 without keys must not serve unsigned requests.
        if not settings.credentials_file:
            raise auth.CredentialsError("HPO_AUTH=sigv4 needs HPO_CREDENTIALS_FILE")
        path = settings.credentials_file
        ring = auth.KeyRing(path, auth.load_credentials(path))
        verifier = auth.Verifier(ring, settings.region)
        auth.install_reload(app, ring)
    app[GUARDS] = Guards(settings, verifier)


def handler_args(settings: Settings) -> dict[str, Any]:
    """aiohttp's limits on request lines and headers, and on idle connections."""
    return {
        "max_line_size": MAX_LINE_BYTES,
        "max_field_size": MAX_FIELD_BYTES,
        "max_headers": MAX_HEADERS,
        "lingering_time": LINGER_S,
        # Also bounds a client that sends its headers slowly.
        "keepalive_timeout": settings.idle_timeout_s,
    }


@web.middleware
async def guard(request: web.Request, handler: middleware.Handler) -> Any:
    """Bound the body, then authenticate, throttle and inject faults."""
    operation = _operation(request)
    if operation is None:
        return await handler(request)
    guards = request.app[GUARDS]
    settings = guards.settings
    try:
        body = await _read_body(request, operation, settings)
    except RequestTimeout as problem:
        # The rest of the body may never come: the connection cannot be reused.
        response = middleware.error_response(problem)
        response.force_close()
        return response
    # However the Redis client retries or rediscovers a cluster, a request
    # spends at most its deadline on Redis (latency injected on purpose
    # aside); a write cut short may have been applied, and every operation is
    # safe to retry.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.store_deadline_s
    try:
        if guards.active:
            async with asyncio.timeout_at(deadline):
                admitted = await _admit(request, operation, body, guards)
            if admitted is not None:
                deadline += await _inject(request, operation, *admitted, guards)
        async with asyncio.timeout_at(deadline):
            return await handler(request)
    except TimeoutError:
        log.warning(
            "store deadline passed",
            extra={"request_id": request.get(REQUEST_ID)},
        )
        raise errors.ServiceUnavailable(UNAVAILABLE_MESSAGE) from None


async def _admit(
    request: web.Request, operation: str, body: bytes, guards: Guards
) -> tuple[str, Faults] | None:
    """Authenticate and throttle; the account and its faults, if it has any."""
    account = _body_account(body)
    if guards.verifier is not None:
        account = _authenticate(request, body, account, guards)
    if account is None:
        return None
    faults = await _throttle(request, operation, account, guards)
    return None if faults is None else (account, faults)


def _operation(request: web.Request) -> str | None:
    """The operation a POST calls, or None: other routes are left alone."""
    # Probes and documents (GET routes) must answer without a signature.
    if request.match_info.http_exception is not None or request.method != "POST":
        return None
    name = request.path[1:]
    return name if name in schemas.INPUTS else None


async def _read_body(request: web.Request, operation: str, settings: Settings) -> bytes:
    limit = settings.max_body_bytes
    if operation in SMALL_BODY_OPERATIONS:
        limit = min(limit, SMALL_BODY_BYTES)
    length = request.content_length
    if length is not None and length > limit:
        raise errors.PayloadTooLarge(_TOO_LARGE_MESSAGE)

    if request.content.is_eof():  # all of it has arrived: nothing to wait for
        body = await request.read()
    else:
        try:
            body = await asyncio.wait_for(request.read(), settings.body_timeout_s)
        except TimeoutError:
            raise RequestTimeout(
                "The request body did not arrive within "
                f"{settings.body_timeout_s:g} seconds"
            ) from None
    if len(body) > limit:
        raise errors.PayloadTooLarge(_TOO_LARGE_MESSAGE)
    return body


def _body_account(body: bytes) -> str | None:
    """The body's AwsAccountId when it is one; the handler judges the rest."""
    # The handler decodes the body again; this runs only when a guard is on.
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    account = decoded.get("AwsAccountId") if isinstance(decoded, dict) else None
    if isinstance(account, str) and _ACCOUNT.match(account):
        return account
    return None


def _authenticate(
    request: web.Request, body: bytes, account: str | None, guards: Guards
) -> str:
    """The signed account; AccessForbidden unless it is the body's account."""
    assert guards.verifier is not None
    signed = auth.SignedRequest(
        request.method,
        request.path,
        list(request.query.items()),
        request.headers,
        body,
    )
    now_s = guards.clock() if guards.clock is not None else time.time()
    request_id = request.get(REQUEST_ID)
    try:
        signer = guards.verifier.account(signed, now_s)
    except errors.AccessForbidden as problem:
        log.info(
            "request refused: %s",
            problem.message,
            extra={"request_id": request_id, "reason": problem.message},
        )
        raise
    # Whether the tuning job exists is not even looked up: the answer is the
    # same for every request of another account.
    if account is not None and account != signer:
        log.info(
            "request refused: key of another account",
            extra={"request_id": request_id, "account": account},
        )
        raise errors.AccessForbidden(
            f"The access key may not act for account {account}"
        )
    return signer


async def _throttle(
    request: web.Request, operation: str, account: str, guards: Guards
) -> Faults | None:
    """Take a token from the account's bucket; answer its fault config."""
    settings = guards.settings
    faults_on = settings.fault_injection and operation not in schemas.FAULT_OPERATIONS
    accounts = request.app[STORAGE].accounts
    raw: bytes | None = None

    # With throttling on, the bucket's script also reads the fault config, so
    # a request still costs one round trip; with throttling off, fault
    # injection costs one small GET, and nothing when it is off.
    if settings.throttle_rate:
        now_ms = None if guards.clock is None else int(guards.clock() * 1000)
        allowed, wait_ms, raw = await accounts.take_token(
            account,
            rate=settings.throttle_rate,
            burst=burst_of(settings),
            now_ms=now_ms,
            read_faults=faults_on,
        )
        if not allowed:
            extra = _fields(request, account, operation, "Throttling", False)
            log.info("throttled", extra={**extra, "retry_after_ms": wait_ms})
            observability.count_throttled(operation)
            raise errors.Throttling(THROTTLED_MESSAGE)
    elif faults_on:
        raw = await accounts.faults(account)
    return decode_faults(raw) if raw else None


async def _inject(
    request: web.Request,
    operation: str,
    account: str,
    faults: Faults,
    guards: Guards,
) -> float:
    """Delay, then fail with the first rule for this operation that fires.

    Answers the seconds it waited, when no rule fired.
    """
    delay_s = 0.0
    if faults.latency_ms is not None:
        delay_s = guards.rng.uniform(*faults.latency_ms) / 1000
        await guards.sleep(delay_s)
    for rule_operation, code, probability in faults.rules:
        if rule_operation not in ("", operation):
            continue
        if guards.rng.random() < probability:
            log.info(
                "fault injected",
                extra=_fields(request, account, operation, code, True),
            )
            observability.count_fault(operation, code)
            raise _error(code, request)
    return delay_s


def _error(code: str, request: web.Request) -> errors.ServiceError:
    """The error a real fault of this code answers, word for word."""
    if code == "Throttling":
        return errors.Throttling(THROTTLED_MESSAGE)
    if code == "ServiceUnavailable":
        return errors.ServiceUnavailable(UNAVAILABLE_MESSAGE)
    request_id = request.get(REQUEST_ID)
    return errors.InternalFailure(f"Internal failure; request id {request_id}")


def _fields(
    request: web.Request, account: str, operation: str, code: str, injected: bool
) -> dict[str, Any]:
    return {
        "request_id": request.get(REQUEST_ID),
        "account": account,
        "operation": operation,
        "code": code,
        "injected": injected,
    }


@dataclass(frozen=True)
class Faults:
    """A fault config: (operation or "", error code, probability) rules."""

    rules: tuple[tuple[str, str, float], ...]
    latency_ms: tuple[int, int] | None


def encode_faults(params: dict[str, Any]) -> bytes:
    """The stored form of a PutFaultInjection's validated input."""
    rules = [
        [rule.get("operation", ""), rule["error_code"], rule["probability"]]
        for rule in params["rules"]
    ]
    latency = params.get("latency")
    if latency is not None:
        latency = [latency["min_ms"], latency["max_ms"]]
    return orjson.dumps({"rules": rules, "latency_ms": latency})


# Every request of an account with faults decodes the same few bytes.
@functools.lru_cache(maxsize=1024)
def decode_faults(raw: bytes) -> Faults:
    """The fault config from its stored form."""
    stored = orjson.loads(raw)
    rules = tuple((op, code, float(p)) for op, code, p in stored["rules"])
    latency = stored["latency_ms"]
    return Faults(rules, None if latency is None else (latency[0], latency[1]))
