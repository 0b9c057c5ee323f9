"""The benchmark runs end to end and judges its targets from its numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.loadgen import Result
from bench.run import Plan, Results

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = {"met", "not met", "not measured"}


@pytest.mark.real_redis
def test_quick_benchmark_writes_its_report(tmp_path):
    output = tmp_path / "benchmarks.md"

    done = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    printed = [line for line in done.stdout.splitlines() if line.startswith("target")]
    assert len(printed) == 5
    text = output.read_text()
    assert f"python bench/run.py --quick --output {output}" in text
    assert "Failed requests over the whole run: 0." in text
    verdicts = re.findall(r"^\| [^|]+ \| (met|not met|not measured) \|", text, re.M)
    assert len(verdicts) == 5
    for query in report.QUERIES:
        for size in ("200", "1,000"):
            assert re.search(rf"^\| \({query}\) .* \| {size} \| \d+ \|", text, re.M)
    assert re.search(r"^\| bare stack, as \(b\) \| 1,000 \| \d+ \|", text, re.M)
    assert re.search(r"^\| moto ListTrainingJobs \| 200 \| \d+ \|", text, re.M)
    assert re.search(r"^\| 1,000 \| \d+ \| seeded 1000 training jobs", text, re.M)
    assert "Walking all 1,000 training jobs, 10 pages of 100" in text


def result(rate: float, p99_ms: float = 1.0) -> Result:
    return Result(
        requests=int(rate), duration_s=1.0, p50_ms=0.5, p99_ms=p99_ms, failures=0
    )


def numbers(service: float, bare: float, moto: float, p99_large: float) -> Results:
    """Results of a two-size run in which every round measured the same."""
    results = Results(workers=2, free_cores=1)
    for query in report.QUERIES:
        for size, p99 in ((1_000, 10.0), (10_000, p99_large)):
            results.runs[("service", query, size)] = [result(service, p99)] * 3
            results.runs[("bare", query, size)] = [result(bare)] * 3
    results.runs[("moto", report.MOTO_QUERY, 1_000)] = [result(moto)] * 3
    for system in ("service", "workers"):
        results.runs[(system, "workers-b", 10_000)] = [result(service)] * 3
    results.memory_per_job = {1_000: 250.0, 10_000: 390.0}
    return results


PLAN = Plan(sizes=(1_000, 10_000), moto_jobs=1_000, walk_jobs=1_000)


@pytest.mark.parametrize(
    ("service", "bare", "moto", "p99_large", "expected"),
    [
        (800, 1000, 10, 12.0, ["met", "met", "met", "met", "not measured"]),
        (700, 1000, 20, 14.0, ["not met", "not met", "not met", "met",
                               "not measured"]),
    ],
)  # fmt: skip
def test_targets_follow_the_medians(service, bare, moto, p99_large, expected):
    judged = report.targets(PLAN, numbers(service, bare, moto, p99_large))
    assert [target.verdict for target in judged] == expected


def test_memory_target_reads_the_largest_tuning_job():
    results = numbers(800, 1000, 10, 12.0)
    results.memory_per_job[10_000] = 401.0
    memory = report.targets(PLAN, results)[3]
    assert memory.verdict == "not met"
    assert memory.reason == "401 bytes per job at 10,000 jobs"


def test_a_reference_that_answered_nothing_is_an_unbounded_ratio():
    results = numbers(800, 1000, 0, 12.0)
    assert report.moto_factor(PLAN, results) == float("inf")
    assert report.targets(PLAN, results)[2].verdict == "not measured"
