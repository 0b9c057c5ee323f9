"""The application factory: settings in, application out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from . import guards, handlers, middleware, observability, openapi
from .keys import SETTINGS, STORAGE
from .settings import Settings
from .storage import Storage

log = logging.getLogger("service.app")


def create_app(settings: Settings, redis: Redis | None = None) -> web.Application:
    """Build the application; open `redis` from the settings unless given one.

    A client passed in stays open after the application stops: its owner
    closes it.
    """
    app = web.Application(
        middlewares=[observability.measure, middleware.aws_errors, guards.guard],
        client_max_size=settings.max_body_bytes,
        handler_args=guards.handler_args(settings),
    )
    guards.install(app, settings)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_storage_context(redis))
    for name, handler in handlers.OPERATIONS.items():
        app.router.add_post(f"/{name}", handler)
    app.router.add_get("/openapi.json", openapi.serve_document)
    observability.install(app)
    return app


def open_redis(settings: Settings) -> Redis:
    """A client for the configured Redis, or the embedded in-memory store."""
    if settings.redis_url is None:
        import fakeredis

        return fakeredis.FakeAsyncRedis()
    if settings.redis_cluster:
        return _open_cluster(settings)
    # Fail fast: a request must not wait out long timeouts and many retries.
    # One retry, on a broken connection only (a pooled connection to a Redis
    # that restarted, a refused connect): it costs milliseconds. A timeout is
    # not retried, so a silent Redis costs one timeout, and a write that may
    # have been applied is not sent twice.
    retry = Retry(
        ExponentialBackoff(cap=0.05, base=0.01),
        retries=1,
        supported_errors=(RedisConnectionError,),
    )
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=retry,
        health_check_interval=30,
    )


def _open_cluster(settings: Settings) -> Redis:
    """A Redis Cluster client that discovers every node from the one named."""
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry as AsyncRetry

    # The cluster client retries a failed command whatever the error, and
    # rediscovers the nodes first, which times out again on a silent node: no
    # retries, so a request costs at most about one timeout. Redirections
    # (MOVED, ASK) are still followed within the one attempt, and the next
    # request after a failure starts from a fresh view of the cluster.
    retry = AsyncRetry(ExponentialBackoff(cap=0.05, base=0.01), retries=0)
    # Typed as Redis: the storage layer uses only what both clients offer.
    return RedisCluster.from_url(  # type: ignore[return-value]
        settings.redis_url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=retry,
        health_check_interval=30,
    )


def _storage_context(redis: Redis | None):
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        client = redis if redis is not None else open_redis(settings)
        if settings.embedded and redis is None:
            log.warning(
                "no HPO_REDIS_URL: using the embedded store; "
                "data lives in memory only and is lost on exit"
            )
        app[STORAGE] = Storage(observability.time_commands(client))
        yield
        if redis is None:
            await client.aclose()

    return context
