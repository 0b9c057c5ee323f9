"""Command line: `python -m service` serves the API; subcommands do the rest."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from aiohttp import web

from . import settings as settings_module
from .app import create_app

log = logging.getLogger("service.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand, or serve when the first word is not one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:])
    return serve(args)


def serve(argv: list[str]) -> int:
    """Parse flags and variables, then serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="sagemakerhpo",
        description="Serve ListTrainingJobsForTuningJob from Redis. "
        f"Subcommands: {', '.join(COMMANDS)}.",
        parents=[settings_module.build_parser()],
    )
    parser.parse_args(argv)
    settings = load_settings(argv)
    if settings is None:
        return 2

    configure_logging(settings.log_level)
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


def load_settings(argv: Sequence[str]) -> settings_module.Settings | None:
    """Settings from flags and variables; None after printing why they are bad."""
    try:
        return settings_module.load(argv)
    except settings_module.SettingsError as problem:
        print(f"sagemakerhpo: {problem}", file=sys.stderr)
        return None


def configure_logging(level: str) -> None:
    """Send the service's logs to standard output at `level`."""
    logging.basicConfig(
        level=level,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


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


# Subcommands: `python -m service <name> ...`; each takes the remaining words
# and returns the exit status.
COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "serve": serve,
}
