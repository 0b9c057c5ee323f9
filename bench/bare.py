"""The bare stack: aiohttp and one Redis round trip, nothing else.

`POST /<name>` answers the bytes stored at the Redis key `bench:bare:<name>`,
which the benchmark fills with the service's own answer to the same query,
so both send responses of the same size over the same stack.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

_REDIS: web.AppKey[Redis] = web.AppKey("redis")


async def answer(request: web.Request) -> web.Response:
    """Read the body, make one Redis round trip, send what it returned."""
    await request.read()
    body = await request.app[_REDIS].get(f"bench:bare:{request.match_info['name']}")
    return web.Response(body=body or b"{}", content_type="application/json")


def create_app(redis_url: str) -> web.Application:
    """One route; the Redis client opens and closes with the application."""
    app = web.Application()

    async def redis_context(app: web.Application) -> AsyncIterator[None]:
        app[_REDIS] = Redis.from_url(redis_url)
        yield
        await app[_REDIS].aclose()

    app.cleanup_ctx.append(redis_context)
    app.router.add_post("/{name}", answer)
    return app


async def serve(host: str, port: int, redis_url: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    runner = web.AppRunner(create_app(redis_url), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    for sign in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sign, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """`python bench/bare.py --port P --redis-url URL`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.redis_url))


if __name__ == "__main__":
    main()
