"""Request ids and AWS-shaped errors for every response."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import errors
from .keys import REQUEST_ID

log = logging.getLogger("service.middleware")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_ERRORS: dict[int, type[errors.ServiceError]] = {
    404: errors.UnknownOperation,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
}
_HTTP_MESSAGES = {
    404: "No operation answers at this path",
    405: "Operations answer POST only",
    413: "Request body is larger than this operation accepts",
}


@web.middleware
async def aws_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id and turn every failure into an AWS error."""
    request_id = str(uuid.uuid4())
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except errors.ServiceError as problem:
        response = error_response(problem)
    except web.HTTPException as problem:
        response = error_response(_from_http(problem))
        if problem.status == 405:
            response.headers["Allow"] = problem.headers.get("Allow", "POST")
    except (RedisConnectionError, RedisTimeoutError):
        log.warning("store unavailable", extra={"request_id": request_id})
        response = error_response(
            errors.ServiceUnavailable("The service cannot reach its store; retry")
        )
    except Exception:
        log.exception("unexpected failure", extra={"request_id": request_id})
        response = error_response(
            errors.InternalFailure(f"Internal failure; request id {request_id}")
        )
    response.headers["x-amzn-RequestId"] = request_id
    return response


def error_response(problem: errors.ServiceError) -> web.Response:
    """The wire form of an error: status, x-amzn-ErrorType and a JSON body."""
    return web.Response(
        status=problem.status,
        body=problem.body(),
        content_type="application/json",
        headers={"x-amzn-ErrorType": problem.code},
    )


def _from_http(problem: web.HTTPException) -> errors.ServiceError:
    kind = _HTTP_ERRORS.get(problem.status)
    if kind is None:
        return errors.ValidationError(problem.reason or "Bad request")
    return kind(_HTTP_MESSAGES[problem.status])
