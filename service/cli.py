"""Command line: `python -m service` serves the API; subcommands do the rest."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from . import model, observability, seeding, server
from . import settings as settings_module

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
        return server.run(settings, argv)
    except OSError as problem:
        print(f"sagemakerhpo: cannot listen: {problem.strerror}", file=sys.stderr)
        return 1


def load_settings(argv: Sequence[str]) -> settings_module.Settings | None:
    """Settings from flags and variables; None after printing why they are bad."""
    try:
        return settings_module.load(argv)
    except settings_module.SettingsError as problem:
        print(f"sagemakerhpo: {problem}", file=sys.stderr)
        return None


def configure_logging(level: str) -> None:
    """Send the service's logs to standard output, as JSON lines, at `level`."""
    observability.configure_logging(level)


# Subcommands: `python -m service <name> ...`; each takes the remaining words
# and returns the exit status.
COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "serve": serve,
    "model-path": model.model_path_command,
    "seed": seeding.seed_command,
    "import": seeding.import_command,
}
