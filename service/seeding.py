"""`seed` and `import`: fill Redis with training jobs through the server's storage.

Both commands write with `Storage.put_training_jobs`, the code PutTrainingJobs
runs, so what they store is record for record what the API would store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from . import errors, schemas, storage
from . import settings as settings_module
from .app import open_redis

log = logging.getLogger("service.seeding")

MAX_BATCH = 1000
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_STATUS_MIX = "Completed=70,InProgress=10,Failed=10,Stopping=5,Stopped=5"
DEFAULT_DISTRIBUTION = "uniform:0,1"
# Statuses whose jobs carry a final objective value when seeded.
_VALUED_STATUSES = frozenset({"Completed", "Stopped"})
# Seeded metric values keep this many decimals, as real metrics are reported.
_VALUE_DIGITS = 6
_IN_FLIGHT = 4
_POOL_BITS = 10
_POOL_SIZE = 1 << _POOL_BITS

_TRAINING_JOB = schemas.TrainingJobInput()
_TUNING_JOB = schemas.INPUTS["CreateTuningJob"]()


class CommandError(Exception):
    """A problem the user can fix; its message is printed on one line."""


@dataclass(frozen=True)
class Target:
    """The tuning job written to, and its objective when it is to be created."""

    account: str
    tuning_job: str
    metric_name: str | None = None
    objective_type: str | None = None


# Synthetic training jobs.


def parse_status_mix(text: str) -> list[tuple[int, float]]:
    """`Completed=70,Failed=30` as (status code, weight) pairs."""
    mix = []
    for part in text.split(","):
        status, _, weight = part.partition("=")
        status = status.strip()
        if status not in schemas.STATUSES:
            known = ", ".join(schemas.STATUSES)
            raise CommandError(f"--status-mix: unknown status {status!r} ({known})")
        try:
            share = float(weight)
        except ValueError:
            raise CommandError(f"--status-mix: {part!r} is not STATUS=WEIGHT") from None
        if not math.isfinite(share) or share < 0:
            raise CommandError(f"--status-mix: weight of {status} must be >= 0")
        mix.append((schemas.STATUSES.index(status), share))
    if sum(share for _, share in mix) <= 0:
        raise CommandError("--status-mix: the weights must not all be zero")
    return mix


def parse_distribution(text: str) -> Callable[[random.Random], float]:
    """`uniform:LOW,HIGH`, `normal:MEAN,STDDEV` or `exponential:MEAN`."""
    kind, _, raw = text.partition(":")
    try:
        numbers = [float(part) for part in raw.split(",")] if raw else []
    except ValueError:
        raise CommandError(f"--metric-distribution: bad numbers in {text!r}") from None
    shapes: dict[str, tuple[int, Callable[..., Callable[[random.Random], float]]]]
    shapes = {
        "uniform": (2, lambda low, high: lambda rng: rng.uniform(low, high)),
        "normal": (2, lambda mean, spread: lambda rng: rng.gauss(mean, spread)),
        "exponential": (1, lambda mean: lambda rng: rng.expovariate(1 / mean)),
    }
    if kind not in shapes or len(numbers) != shapes[kind][0]:
        raise CommandError(
            "--metric-distribution must be uniform:LOW,HIGH, normal:MEAN,STDDEV "
            f"or exponential:MEAN, not {text!r}"
        )
    if not all(math.isfinite(number) for number in numbers):
        raise CommandError("--metric-distribution: numbers must be finite")
    if kind == "exponential" and numbers[0] <= 0:
        raise CommandError("--metric-distribution: the mean must be above 0")
    return shapes[kind][1](*numbers)


def _hyperparameter_makers(count: int) -> list[tuple[str, Callable[..., str]]]:
    """`count` named generators of hyperparameter values, as SDKs send them."""
    known: list[tuple[str, Callable[[random.Random], str]]] = [
        ("learning_rate", lambda rng: f"{10 ** rng.uniform(-5, -1):.3g}"),
        ("batch_size", lambda rng: str(2 ** rng.randint(4, 9))),
        ("momentum", lambda rng: f"{rng.uniform(0.8, 0.99):.3f}"),
        ("dropout", lambda rng: f"{rng.uniform(0, 0.5):.2f}"),
        ("epochs", lambda rng: str(rng.randint(1, 50))),
        ("optimizer", lambda rng: rng.choice(("sgd", "adam", "rmsprop"))),
    ]
    extra = [
        (f"param_{index}", lambda rng: f"{rng.random():.4f}")
        for index in range(len(known), count)
    ]
    return (known + extra)[:count]


def synthetic_jobs(
    count: int,
    *,
    status_mix: Sequence[tuple[int, float]],
    distribution: Callable[[random.Random], float],
    hyperparameters: int,
    seed: int,
    start: int = 0,
) -> Iterator[storage.TrainingJob]:
    """`count` reproducible training jobs named `job-<number>`, from `start`."""
    rng = random.Random(seed)
    codes = [code for code, _ in status_mix]
    weights = [share for _, share in status_mix]
    valued = {schemas.STATUSES.index(status) for status in _VALUED_STATUSES}
    # Values are drawn from pools made once: a draw per job and member would
    # cost more than writing the job to Redis.
    pools = [
        (name, [make(rng) for _ in range(_POOL_SIZE)])
        for name, make in _hyperparameter_makers(hyperparameters)
    ]
    draw = rng.getrandbits
    name_format = f"job-%0{len(str(max(start + count - 1, 0)))}d"
    for number, code in zip(
        range(start, start + count), rng.choices(codes, weights, k=count), strict=True
    ):
        value = round(distribution(rng), _VALUE_DIGITS) if code in valued else None
        retried = draw(4)  # 0 to 15: most jobs never retried
        yield storage.TrainingJob(
            name=name_format % number,
            status=code,
            hyperparameters={name: pool[draw(_POOL_BITS)] for name, pool in pools},
            retried_attempt=retried if retried < 4 else 0,
            value=value if value is None or math.isfinite(value) else None,
        )


# Writing in batches, several in flight.


async def write_batches(
    store: storage.Storage,
    target: Target,
    batches: Iterable[list[storage.TrainingJob]],
    progress: tqdm,
    in_flight: int = _IN_FLIGHT,
) -> int:
    """Write every batch with `in_flight` writes outstanding; return the count."""
    pending: set[asyncio.Task[int]] = set()
    written = 0

    async def put(batch: list[storage.TrainingJob]) -> int:
        count = await store.put_training_jobs(target.account, target.tuning_job, batch)
        progress.update(count)
        return count

    try:
        for batch in batches:
            if len(pending) >= in_flight:
                done, pending = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED
                )
                written += sum(task.result() for task in done)
            pending.add(asyncio.ensure_future(put(batch)))
        written += sum(await asyncio.gather(*pending))
    finally:
        for task in pending:
            task.cancel()
    return written


def chunked(jobs: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of `size` items (the last may be shorter)."""
    batch: list[Any] = []
    for job in jobs:
        batch.append(job)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def prepare(store: storage.Storage, target: Target) -> None:
    """Create the target's tuning job when its objective is given."""
    if target.metric_name is None or target.objective_type is None:
        return
    try:
        await store.create_tuning_job(
            target.account,
            target.tuning_job,
            target.metric_name,
            target.objective_type,
        )
    except storage.Conflict:
        raise CommandError(
            f"tuning job {target.tuning_job!r} exists with another objective"
        ) from None


# `seed`


def seed_command(argv: list[str]) -> int:
    """`python -m service seed`: write synthetic training jobs into Redis."""
    return _run(seed_parser().parse_args(argv), argv, seed_jobs)


def seed_parser() -> argparse.ArgumentParser:
    """The `seed` command's flags."""
    parser = _parser("seed", "Write synthetic training jobs into Redis.")
    parser.add_argument("--jobs", type=int, required=True, help="how many")
    parser.add_argument("--status-mix", default=DEFAULT_STATUS_MIX)
    parser.add_argument(
        "--metric-distribution",
        default=DEFAULT_DISTRIBUTION,
        help="uniform:LOW,HIGH, normal:MEAN,STDDEV or exponential:MEAN",
    )
    parser.add_argument("--hyperparameters", type=int, default=2, help="per job")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--start", type=int, default=0, help="first job number")
    parser.add_argument("--metric-name", default="validation:accuracy")
    parser.add_argument(
        "--objective-type", default="Maximize", choices=schemas.OBJECTIVE_TYPES
    )
    return parser


async def seed_jobs(store: storage.Storage, args: argparse.Namespace) -> str:
    """Seed as `args` (the `seed` command's flags) say; return the last line."""
    if args.jobs < 0 or not 0 <= args.hyperparameters <= 100:
        raise CommandError("--jobs must be >= 0 and --hyperparameters 0 to 100")
    jobs = synthetic_jobs(
        args.jobs,
        status_mix=parse_status_mix(args.status_mix),
        distribution=parse_distribution(args.metric_distribution),
        hyperparameters=args.hyperparameters,
        seed=args.seed,
        start=args.start,
    )
    target = _target(args, args.metric_name, args.objective_type)
    await prepare(store, target)

    started = time.perf_counter()
    with _progress(args, args.jobs) as progress:
        written = await write_batches(
            store, target, chunked(jobs, args.batch_size), progress, args.in_flight
        )
    elapsed_s = time.perf_counter() - started
    rate = written / elapsed_s if elapsed_s > 0 else 0.0
    return (
        f"seeded {written} training jobs into {target.account}/{target.tuning_job} "
        f"in {elapsed_s:.2f} s ({rate:,.0f} jobs/s)"
    )


# `import`


def import_command(argv: list[str]) -> int:
    """`python -m service import FILE.jsonl`: load PutTrainingJobs items."""
    return _run(import_parser().parse_args(argv), argv, import_jobs)


def import_parser() -> argparse.ArgumentParser:
    """The `import` command's flags."""
    parser = _parser(
        "import",
        "Load training jobs from JSON lines, one PutTrainingJobs item a line. "
        "An optional first line holds the CreateTuningJob members "
        "(AwsAccountId, TuningJobName, ObjectiveMetricName, ObjectiveType); "
        "flags override it.",
        account_default=None,
        tuning_job_required=False,
    )
    parser.add_argument("file", type=Path, help="JSON lines; - for standard input")
    parser.add_argument("--metric-name")
    parser.add_argument("--objective-type", choices=schemas.OBJECTIVE_TYPES)
    return parser


@dataclass
class ImportReport:
    """What an import wrote and which lines it refused, with why."""

    written: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    def refuse(self, line_number: int, reason: str) -> None:
        """Note that line `line_number` is not written, and why."""
        self.bad.append((line_number, reason))


def read_lines(
    lines: Iterable[bytes], report: ImportReport
) -> tuple[dict[str, Any], Iterator[storage.TrainingJob]]:
    """The header's members (or {}) and the valid training jobs that follow.

    Bad lines, and lines naming a training job already given, go to `report`.
    """
    numbered = enumerate(lines, start=1)
    for number, line in numbered:
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            item = None
        if isinstance(item, dict) and _is_header(item):
            return item, _jobs(numbered, report)
        return {}, _jobs(itertools.chain([(number, line)], numbered), report)
    return {}, iter(())


def _is_header(item: dict[str, Any]) -> bool:
    return "TrainingJobName" not in item and "TuningJobName" in item


def _jobs(
    numbered: Iterable[tuple[int, bytes]], report: ImportReport
) -> Iterator[storage.TrainingJob]:
    first_seen: dict[str, int] = {}
    for number, line in numbered:
        if not line.strip():
            continue
        item = _decode(line, number, report)
        if item is None:
            continue
        try:
            job = schemas.load(_TRAINING_JOB, item)
        except errors.ValidationError as problem:
            report.refuse(number, problem.message)
            continue
        if job["name"] in first_seen:
            earlier = first_seen[job["name"]]
            report.refuse(number, f"training job named already on line {earlier}")
            continue
        first_seen[job["name"]] = number
        yield storage.TrainingJob(
            name=job["name"],
            status=schemas.STATUSES.index(job["status"]),
            hyperparameters=job["hyperparameters"],
            retried_attempt=job["retried_attempt"],
            value=job.get("value"),
        )


def _decode(line: bytes, number: int, report: ImportReport) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        report.refuse(number, "not valid JSON")
        return None


async def import_jobs(store: storage.Storage, args: argparse.Namespace) -> str:
    """Import as `args` (the `import` command's flags) say; return the last line."""
    report = ImportReport()
    with _open_lines(args.file) as lines:
        header, jobs = read_lines(lines, report)
        target = _import_target(args, header)
        await prepare(store, target)
        with _progress(args, None) as progress:
            try:
                report.written = await write_batches(
                    store,
                    target,
                    chunked(jobs, args.batch_size),
                    progress,
                    args.in_flight,
                )
            except storage.NotFound:
                raise CommandError(
                    f"tuning job {target.tuning_job!r} does not exist: give "
                    "--metric-name and --objective-type, or a header line"
                ) from None

    for number, reason in report.bad:
        print(f"{args.file}:{number}: {reason}", file=sys.stderr)
    refused = len(report.bad)
    summary = (
        f"imported {report.written} training jobs into "
        f"{target.account}/{target.tuning_job}; {refused} lines refused"
    )
    if refused:
        raise _Partial(summary)
    return summary


class _Partial(Exception):
    """The command finished but refused some input; exit status 1."""


def _import_target(args: argparse.Namespace, header: dict[str, Any]) -> Target:
    members = {
        "AwsAccountId": args.account,
        "TuningJobName": args.tuning_job,
        "ObjectiveMetricName": args.metric_name,
        "ObjectiveType": args.objective_type,
    }
    merged = dict(header)
    merged.update({key: value for key, value in members.items() if value is not None})
    merged.setdefault("AwsAccountId", DEFAULT_ACCOUNT)
    if "TuningJobName" not in merged:
        raise CommandError("give --tuning-job or a header line naming the tuning job")

    creating = {"ObjectiveMetricName", "ObjectiveType"} & merged.keys()
    schema = _TUNING_JOB if creating else schemas.INPUTS["DeleteTuningJob"]()
    try:
        loaded = schemas.load(schema, merged)
    except errors.ValidationError as problem:
        raise CommandError(f"tuning job: {problem.message}") from None
    return Target(
        loaded["account"],
        loaded["tuning_job"],
        loaded.get("metric_name"),
        loaded.get("objective_type"),
    )


@contextlib.contextmanager
def _open_lines(path: Path) -> Iterator[Iterable[bytes]]:
    """Lines of a file, or of standard input for `-`, as bytes."""
    if str(path) == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = path.open("rb")
    except OSError as problem:
        raise CommandError(f"cannot read {path}: {problem.strerror}") from None
    with handle:
        yield handle


# Shared by both commands.


def _parser(
    name: str,
    description: str,
    *,
    account_default: str | None = DEFAULT_ACCOUNT,
    tuning_job_required: bool = True,
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"sagemakerhpo {name}",
        description=description,
        parents=[settings_module.build_parser()],
    )
    parser.add_argument("--account", default=account_default, help="AwsAccountId")
    parser.add_argument(
        "--tuning-job", required=tuning_job_required, help="TuningJobName"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=MAX_BATCH,
        help=f"training jobs per write, 1 to {MAX_BATCH}",
    )
    parser.add_argument(
        "--in-flight", type=int, default=_IN_FLIGHT, help="writes outstanding at once"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _target(
    args: argparse.Namespace, metric_name: str | None, objective_type: str | None
) -> Target:
    members = {"AwsAccountId": args.account, "TuningJobName": args.tuning_job}
    try:
        loaded = schemas.load(schemas.INPUTS["DeleteTuningJob"](), members)
    except errors.ValidationError as problem:
        raise CommandError(problem.message) from None
    return Target(loaded["account"], loaded["tuning_job"], metric_name, objective_type)


def _progress(args: argparse.Namespace, total: int | None) -> tqdm:
    return tqdm(
        total=total,
        unit="job",
        unit_scale=True,
        disable=args.quiet,
        file=sys.stderr,
    )


def _run(
    args: argparse.Namespace,
    argv: list[str],
    work: Callable[[storage.Storage, argparse.Namespace], Any],
) -> int:
    """Check the shared flags, open Redis, run `work` and print its last line."""
    try:
        settings = settings_module.load(argv)
    except settings_module.SettingsError as problem:
        print(f"sagemakerhpo: {problem}", file=sys.stderr)
        return 2
    if settings.redis_url is None:
        print(
            "sagemakerhpo: set HPO_REDIS_URL or --redis-url: "
            "the embedded store would lose the jobs on exit",
            file=sys.stderr,
        )
        return 2
    if not 1 <= args.batch_size <= MAX_BATCH or args.in_flight < 1:
        print(
            f"sagemakerhpo: --batch-size must be 1 to {MAX_BATCH}, "
            "--in-flight at least 1",
            file=sys.stderr,
        )
        return 2
    try:
        print(asyncio.run(_with_storage(settings, args, work)))
    except CommandError as problem:
        print(f"sagemakerhpo: {problem}", file=sys.stderr)
        return 1
    except _Partial as partial:
        print(partial)
        return 1
    return 0


async def _with_storage(
    settings: settings_module.Settings,
    args: argparse.Namespace,
    work: Callable[[storage.Storage, argparse.Namespace], Any],
) -> str:
    # Writes of a thousand jobs take longer than a request's timeout allows.
    slow = settings_module.Settings(
        redis_url=settings.redis_url, redis_timeout_s=max(settings.redis_timeout_s, 30)
    )
    redis = open_redis(slow)
    try:
        return await work(storage.Storage(redis), args)
    finally:
        await redis.aclose()
