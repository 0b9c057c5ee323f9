"""Command line: `python -m service` serves the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from . import settings as settings_module
from .app import create_app

log = logging.getLogger("service.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags and variables, then serve until SIGINT or SIGTERM."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="sagemakerhpo",
        description="Serve ListTrainingJobsForTuningJob from Redis.",
        parents=[settings_module.build_parser()],
    )
    parser.parse_args(argv)
    try:
        settings = settings_module.load(argv)
    except settings_module.SettingsError as problem:
        print(f"sagemakerhpo: {problem}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if settings.token_secret_generated:
        log.warning(
            "no HPO_TOKEN_SECRET: NextTokens are signed with a random key; "
            "they will not survive a restart or work across replicas"
        )
    try:
        asyncio.run(_serve(settings))
    except OSError as problem:
        print(f"sagemakerhpo: cannot listen: {problem.strerror}", file=sys.stderr)
        return 1
    return 0


async def _serve(settings: settings_module.Settings) -> None:
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("listening on http://%s:%d", settings.host, settings.port)
        await _until_signalled()
    finally:
        await runner.cleanup()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sign in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sign, stop.set)
    await stop.wait()
