"""AWS Signature Version 4: access keys from a file, and request verification."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import logging
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from . import errors

log = logging.getLogger("service.auth")

SERVICE = "sagemakerhpo"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 15 * 60
_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_ACCOUNT = re.compile(r"[0-9]{12}\Z")
_HEADER = re.compile(
    r"AWS4-HMAC-SHA256 +Credential=(?P<credential>[^, ]+), *"
    r"SignedHeaders=(?P<headers>[a-z0-9;_.-]+), *"
    r"Signature=(?P<signature>[0-9a-f]{64})\Z"
)
_SPACES = re.compile(r"\s+")


class CredentialsError(Exception):
    """The credentials file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class AccessKey:
    """One access key: its secret and the account it acts for."""

    secret: str
    account: str

    def __repr__(self) -> str:
        # Keeps the secret out of tracebacks and debug logs.
        return f"AccessKey(account={self.account!r})"


Credentials = Mapping[str, AccessKey]


@dataclass
class KeyRing:
    """The current access keys; `reload` swaps them in one assignment."""

    path: str
    keys: Credentials

    def reload(self) -> bool:
        """Re-read the file; keep the old keys and log why if it is bad."""
        try:
            self.keys = load_credentials(self.path)
        except CredentialsError as problem:
            log.error("credentials not reloaded, keeping the old ones: %s", problem)
            return False
        log.info("credentials reloaded: %d access keys", len(self.keys))
        return True


def load_credentials(path: str) -> dict[str, AccessKey]:
    """Read `{"Credentials": [{AccessKeyId, SecretAccessKey, AwsAccountId}]}`."""
    try:
        document = orjson.loads(Path(path).read_bytes())
    except OSError as problem:
        raise CredentialsError(f"cannot read {path}: {problem.strerror}") from None
    except orjson.JSONDecodeError:
        raise CredentialsError(f"{path} is not valid JSON") from None

    entries = document.get("Credentials") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise CredentialsError(f'{path} must hold {{"Credentials": [...]}}')
    keys: dict[str, AccessKey] = {}
    for number, entry in enumerate(entries, 1):
        key_id, key = _entry(entry, f"{path}: credential {number}")
        keys[key_id] = key
    return keys


def _entry(entry: object, where: str) -> tuple[str, AccessKey]:
    if not isinstance(entry, dict):
        raise CredentialsError(f"{where} must be an object")
    values = [entry.get(name) for name in _ENTRY_MEMBERS]
    if not all(isinstance(value, str) and value for value in values):
        members = ", ".join(_ENTRY_MEMBERS)
        raise CredentialsError(f"{where} needs the strings {members}")
    key_id, secret, account = values
    if not _ACCOUNT.match(account):
        raise CredentialsError(f"{where}: AwsAccountId must be 12 digits")
    return key_id, AccessKey(secret, account)


_ENTRY_MEMBERS = ("AccessKeyId", "SecretAccessKey", "AwsAccountId")


def install_reload(app: web.Application, ring: KeyRing) -> None:
    """Re-read the credentials file on SIGHUP while the application runs.

    The keys are swapped in one assignment on the event loop, so requests in
    flight finish with the keys they started with and none is dropped.
    """

    async def start(app: web.Application) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, ring.reload)
        except (RuntimeError, ValueError, NotImplementedError):
            # Only a main thread's loop on a Unix system can take signals.
            log.warning("SIGHUP cannot be handled here: keys load at start only")

    async def stop(app: web.Application) -> None:
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


@dataclass(frozen=True)
class SignedRequest:
    """What SigV4 covers of one request."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Any  # a case-insensitive multidict, as aiohttp gives
    body: bytes


class Verifier:
    """Checks SigV4 signatures against a key ring, as AWS does for JSON POSTs."""

    def __init__(self, ring: KeyRing, region: str | None = None) -> None:
        self.ring = ring
        self.region = region

    def account(self, request: SignedRequest, now_s: float) -> str:
        """The account the request is signed for; AccessForbidden otherwise."""
        match = _HEADER.match(request.headers.get("authorization", ""))
        if match is None:
            raise _forbidden(
                "Missing or malformed Authorization header; requests must be signed "
                "with AWS Signature Version 4"
            )
        key_id, scope = self._scope(match["credential"])
        key = self.ring.keys.get(key_id)
        if key is None:
            raise _forbidden("The security token included in the request is invalid")

        amz_date = request.headers.get("x-amz-date", "")
        self._check_date(amz_date, scope[0], now_s)
        payload_hash = hashlib.sha256(request.body).hexdigest()
        sent_hash = request.headers.get("x-amz-content-sha256")
        if sent_hash is not None and sent_hash != payload_hash:
            raise _forbidden("The x-amz-content-sha256 header does not match the body")

        signed = match["headers"].split(";")
        canonical = _canonical_request(request, signed, payload_hash)
        expected = _signature(key.secret, scope, amz_date, canonical)
        if not hmac.compare_digest(expected, match["signature"]):
            raise _forbidden(
                "The request signature we calculated does not match the "
                "signature you provided"
            )
        return key.account

    def _scope(self, credential: str) -> tuple[str, tuple[str, ...]]:
        parts = credential.split("/")
        if len(parts) != 5 or parts[3] != SERVICE or parts[4] != "aws4_request":
            raise _forbidden(
                f"Credential must be <key>/<date>/<region>/{SERVICE}/aws4_request"
            )
        if self.region is not None and parts[2] != self.region:
            raise _forbidden("Credential should be scoped to a valid region")
        return parts[0], tuple(parts[1:])

    @staticmethod
    def _check_date(amz_date: str, scope_date: str, now_s: float) -> None:
        try:
            signed_at = datetime.datetime.strptime(amz_date, _DATE_FORMAT)
        except ValueError:
            raise _forbidden("Missing or malformed X-Amz-Date header") from None
        if amz_date[:8] != scope_date:
            raise _forbidden("Credential date does not match the X-Amz-Date day")
        stamp = signed_at.replace(tzinfo=datetime.UTC).timestamp()
        if abs(stamp - now_s) > MAX_SKEW_S:
            raise _forbidden(
                "Signature expired: X-Amz-Date is more than 15 minutes from "
                "the server time"
            )


def _canonical_request(
    request: SignedRequest, signed: list[str], payload_hash: str
) -> str:
    if signed != sorted(set(signed)) or not {"host", "x-amz-date"} <= set(signed):
        raise _forbidden("SignedHeaders must be sorted and include host and x-amz-date")
    lines = []
    for name in signed:
        values = request.headers.getall(name, None)
        if values is None:
            raise _forbidden("A header named in SignedHeaders is missing")
        value = ",".join(_SPACES.sub(" ", one.strip()) for one in values)
        lines.append(f"{name}:{value}\n")
    return "\n".join(
        (
            request.method,
            quote(request.path, safe="/~"),
            _canonical_query(request.query),
            "".join(lines),
            ";".join(signed),
            payload_hash,
        )
    )


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{key}={value}" for key, value in encoded)


def _signature(
    secret: str, scope: tuple[str, ...], amz_date: str, canonical: str
) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join((ALGORITHM, amz_date, "/".join(scope), digest))
    key = ("AWS4" + secret).encode()
    for part in scope:
        key = hmac.digest(key, part.encode(), hashlib.sha256)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _forbidden(message: str) -> errors.AccessForbidden:
    # Messages name what is wrong, never a key, secret or signature.
    return errors.AccessForbidden(message)
