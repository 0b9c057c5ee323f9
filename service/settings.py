"""Settings read once at start-up from HPO_* variables and command-line flags."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know before it starts."""

    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    token_secret: bytes = b""
    token_secret_generated: bool = False
    log_level: str = "INFO"
    redis_timeout_s: float = 1.0
    max_body_bytes: int = 2 * 1024 * 1024
    workers: int = 1
    redis_cluster: bool = False
    shutdown_grace_s: float = 5.0
    # A shared deployment: see the README, "Operating a shared deployment".
    auth: str = "none"
    credentials_file: str | None = None
    region: str | None = None
    throttle_rate: float = 0.0
    throttle_burst: int = 0  # 0: one second's worth of requests
    fault_injection: bool = False
    body_timeout_s: float = 10.0
    store_deadline_s: float = 1.5
    idle_timeout_s: float = 75.0

    @property
    def embedded(self) -> bool:
        """True when no Redis URL is set and the in-process store is used."""
        return self.redis_url is None


# (attribute, variable, flag, help)
_OPTIONS = (
    ("host", "HPO_HOST", "--host", "address to listen on"),
    ("port", "HPO_PORT", "--port", "port to listen on"),
    ("redis_url", "HPO_REDIS_URL", "--redis-url", "redis://host:port/db"),
    ("token_secret", "HPO_TOKEN_SECRET", "--token-secret", "key for NextTokens"),
    ("log_level", "HPO_LOG_LEVEL", "--log-level", "DEBUG, INFO, WARNING, ..."),
    (
        "redis_timeout_s",
        "HPO_REDIS_TIMEOUT_S",
        "--redis-timeout-s",
        "Redis connect and command timeout, in seconds",
    ),
    (
        "max_body_bytes",
        "HPO_MAX_BODY_BYTES",
        "--max-body-bytes",
        "largest request body accepted",
    ),
    ("workers", "HPO_WORKERS", "--workers", "worker processes sharing the port"),
    (
        "redis_cluster",
        "HPO_REDIS_CLUSTER",
        "--redis-cluster",
        "1 when HPO_REDIS_URL names a node of a Redis Cluster",
    ),
    (
        "shutdown_grace_s",
        "HPO_SHUTDOWN_GRACE_S",
        "--shutdown-grace-s",
        "after SIGTERM, seconds to keep accepting while not ready",
    ),
    ("auth", "HPO_AUTH", "--auth", "none or sigv4"),
    (
        "credentials_file",
        "HPO_CREDENTIALS_FILE",
        "--credentials-file",
        "JSON file of access keys, for sigv4; re-read on SIGHUP",
    ),
    ("region", "HPO_REGION", "--region", "the only region signatures may name"),
    (
        "throttle_rate",
        "HPO_THROTTLE_RATE",
        "--throttle-rate",
        "requests per second per account; 0 is unlimited",
    ),
    (
        "throttle_burst",
        "HPO_THROTTLE_BURST",
        "--throttle-burst",
        "requests an idle account may send at once",
    ),
    (
        "fault_injection",
        "HPO_FAULT_INJECTION",
        "--fault-injection",
        "on or off: serve and apply PutFaultInjection",
    ),
    (
        "store_deadline_s",
        "HPO_STORE_DEADLINE_S",
        "--store-deadline-s",
        "time an operation may spend on Redis before it answers 503, in seconds",
    ),
    (
        "body_timeout_s",
        "HPO_BODY_TIMEOUT_S",
        "--body-timeout-s",
        "time a client has to send its request body, in seconds",
    ),
    (
        "idle_timeout_s",
        "HPO_IDLE_TIMEOUT_S",
        "--idle-timeout-s",
        "seconds before an idle connection (or unfinished headers) is closed",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for the flags that mirror the HPO_* variables."""
    parser = argparse.ArgumentParser(add_help=False)
    for attribute, variable, flag, text in _OPTIONS:
        parser.add_argument(flag, dest=attribute, help=f"{text} (${variable})")
    return parser


def load(
    argv: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from flags, falling back to variables, then defaults."""
    environ = os.environ if environ is None else environ
    flags = vars(build_parser().parse_known_args(list(argv))[0])
    raw = {}
    for attribute, variable, flag, _ in _OPTIONS:
        value = flags.get(attribute)
        if value is None:
            value = environ.get(variable)
        if value is not None and value != "":
            raw[attribute] = (value, f"{variable} ({flag})")
    return _from_raw(raw)


def _from_raw(raw: dict[str, tuple[str, str]]) -> Settings:
    values: dict[str, object] = {}
    if "host" in raw:
        values["host"] = raw["host"][0]
    if "port" in raw:
        values["port"] = _int(*raw["port"], low=0, high=65535)
    if "redis_url" in raw:
        values["redis_url"] = _redis_url(*raw["redis_url"])
    if "log_level" in raw:
        values["log_level"] = _log_level(*raw["log_level"])
    if "redis_timeout_s" in raw:
        values["redis_timeout_s"] = _positive_float(*raw["redis_timeout_s"])
    if "max_body_bytes" in raw:
        values["max_body_bytes"] = _int(*raw["max_body_bytes"], low=1024)
    values.update(_process(raw))
    values.update(_shared_deployment(raw))

    if "token_secret" in raw:
        values["token_secret"] = raw["token_secret"][0].encode()
    else:
        values["token_secret"] = secrets.token_bytes(32)
        values["token_secret_generated"] = True
    return Settings(**values)  # type: ignore[arg-type]


def _int(text: str, name: str, low: int, high: int | None = None) -> int:
    try:
        number = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {text!r}") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise SettingsError(f"{name} must be {bounds}, not {number}")
    return number


def _positive_float(text: str, name: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {text!r}") from None
    if not 0 < number < 3600:
        raise SettingsError(f"{name} must be above 0 and below 3600, not {text}")
    return number


def _redis_url(text: str, name: str) -> str:
    if not text.startswith(_REDIS_SCHEMES):
        schemes = ", ".join(_REDIS_SCHEMES)
        raise SettingsError(f"{name} must start with one of {schemes}")
    return text


def _log_level(text: str, name: str) -> str:
    level = text.upper()
    if level not in _LOG_LEVELS or not isinstance(logging.getLevelName(level), int):
        raise SettingsError(f"{name} must be one of {', '.join(_LOG_LEVELS)}")
    return level


def _process(raw: dict[str, tuple[str, str]]) -> dict[str, object]:
    """Worker count, Redis Cluster mode and the shutdown grace."""
    values: dict[str, object] = {}
    if "workers" in raw:
        values["workers"] = _int(*raw["workers"], low=1, high=256)
    if "redis_cluster" in raw:
        values["redis_cluster"] = _flag(*raw["redis_cluster"])
    if "shutdown_grace_s" in raw:
        values["shutdown_grace_s"] = _positive_float(*raw["shutdown_grace_s"])

    # Each worker would get its own empty in-memory store: refuse, not split.
    if values.get("workers", 1) > 1 and "redis_url" not in raw:
        raise SettingsError(
            "HPO_WORKERS (--workers) above 1 needs HPO_REDIS_URL: "
            "the embedded store cannot be shared between processes"
        )
    if values.get("redis_cluster") and "redis_url" not in raw:
        raise SettingsError("HPO_REDIS_CLUSTER (--redis-cluster) needs HPO_REDIS_URL")
    return values


def _flag(text: str, name: str) -> bool:
    lowered = text.lower()
    if lowered not in ("0", "1", "false", "true", "off", "on"):
        raise SettingsError(f"{name} must be 1 or 0, not {text!r}")
    return lowered in ("1", "true", "on")


def _shared_deployment(raw: dict[str, tuple[str, str]]) -> dict[str, object]:
    """Authentication, throttling, fault injection and slow-client settings."""
    values: dict[str, object] = {}
    if "auth" in raw:
        values["auth"] = _choice(*raw["auth"], choices=("none", "sigv4"))
    if "region" in raw:
        values["region"] = raw["region"][0]
    if "fault_injection" in raw:
        choice = _choice(*raw["fault_injection"], choices=("on", "off"))
        values["fault_injection"] = choice == "on"
    if "body_timeout_s" in raw:
        values["body_timeout_s"] = _positive_float(*raw["body_timeout_s"])
    if "idle_timeout_s" in raw:
        values["idle_timeout_s"] = _positive_float(*raw["idle_timeout_s"])
    if "store_deadline_s" in raw:
        values["store_deadline_s"] = _positive_float(*raw["store_deadline_s"])

    if "throttle_rate" in raw:
        values["throttle_rate"] = _rate(*raw["throttle_rate"])
    if "throttle_burst" in raw:
        values["throttle_burst"] = _int(*raw["throttle_burst"], low=1, high=10**6)

    if "credentials_file" in raw:
        values["credentials_file"] = raw["credentials_file"][0]
    if values.get("auth") == "sigv4":
        _check_credentials(raw.get("credentials_file"))
    return values


def _choice(text: str, name: str, choices: tuple[str, ...]) -> str:
    if text.lower() not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}")
    return text.lower()


def _rate(text: str, name: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {text!r}") from None
    if not 0 <= number <= 10**6:
        raise SettingsError(f"{name} must be between 0 and 1000000, not {text}")
    return number


def _check_credentials(given: tuple[str, str] | None) -> None:
    """With sigv4, refuse to start unless the credentials file reads cleanly."""
    from . import auth

    if given is None:
        raise SettingsError("HPO_AUTH=sigv4 needs HPO_CREDENTIALS_FILE")
    path, name = given
    try:
        auth.load_credentials(path)
    except auth.CredentialsError as problem:
        raise SettingsError(f"{name}: {problem}") from None
