"""The service's errors, each with the code and HTTP status AWS clients expect."""

from __future__ import annotations

import orjson


class ServiceError(Exception):
    """An error answered to the client as `{"__type": code, "message": ...}`."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        """The JSON body botocore's rest-json parser reads."""
        return orjson.dumps({"__type": self.code, "message": self.message})


class ValidationError(ServiceError):
    """The request breaks a constraint of the operation's input."""

    code = "ValidationError"
    status = 400


class PayloadTooLarge(ValidationError):
    """The request body is larger than the server accepts."""

    status = 413


class AccessForbidden(ServiceError):
    """The caller may not perform this request."""

    code = "AccessForbidden"
    status = 403


class ResourceNotFound(ServiceError):
    """The tuning job does not exist for this account."""

    code = "ResourceNotFound"
    status = 404


class ResourceInUse(ServiceError):
    """The tuning job exists with another definition."""

    code = "ResourceInUse"
    status = 409


class Throttling(ServiceError):
    """The account sent more requests than its budget allows."""

    code = "Throttling"
    status = 401


class InternalFailure(ServiceError):
    """Something unexpected failed; the message reveals nothing internal."""

    code = "InternalFailure"
    status = 500


class ServiceUnavailable(ServiceError):
    """The backing store cannot be reached right now."""

    code = "ServiceUnavailable"
    status = 503


class UnknownOperation(ServiceError):
    """No operation answers at this path."""

    code = "UnknownOperationException"
    status = 404


class MethodNotAllowed(ServiceError):
    """The path exists, but not for this HTTP method."""

    code = "MethodNotAllowedException"
    status = 405
