"""Load test: users walk tuning jobs page by page, as boto3's paginator does.

    locust -f deploy/loadtest/locustfile.py --host http://127.0.0.1:8080

Settings, from the environment: HPO_LOADTEST_ACCOUNT (default 123456789012),
HPO_LOADTEST_TUNING_JOBS (comma-separated names; default `load-test`, the
name the README's seed command uses), HPO_LOADTEST_MAX_PAGES (pages per walk
at most, default 20; 0 walks to the end). Each request is counted under its
query's shape; failures are counted by their `x-amzn-ErrorType`.
"""

from __future__ import annotations

import os
import random
from typing import Any

from locust import HttpUser, between, task
from paging import Answer, answer_of, random_query, walk

ACCOUNT = os.environ.get("HPO_LOADTEST_ACCOUNT", "123456789012")
TUNING_JOBS = os.environ.get("HPO_LOADTEST_TUNING_JOBS", "load-test").split(",")
MAX_PAGES = int(os.environ.get("HPO_LOADTEST_MAX_PAGES", "20")) or None


def shape(body: dict[str, Any]) -> str:
    """The name a request is counted under: its order and filter, not its ids."""
    order = "metric" if "SortBy" in body else "name"
    status = body.get("TrainingJobStatusEquals", "all")
    page = "next" if "NextToken" in body else "first"
    return f"{order} {body.get('SortOrder', 'Ascending')} {status} ({page} page)"


class PagingUser(HttpUser):
    """Walks one tuning job after another with a random order and filter."""

    wait_time = between(0.0, 0.5)

    def on_start(self) -> None:
        """Give each user its own reproducible mix."""
        self.rng = random.Random()

    def post(self, operation: str, body: dict[str, Any]) -> Answer:
        """POST through locust's client; an AWS error fails under its code."""
        with self.client.post(
            f"/{operation}",
            json=body,
            name=f"{operation}: {shape(body)}",
            catch_response=True,
        ) as response:
            answer = answer_of(
                response.status_code, response.headers, response.text or ""
            )
            if answer.error_code is None:
                response.success()
            else:
                response.failure(answer.error_code)
            return answer

    @task
    def walk_pages(self) -> None:
        """One walk, from the first page to the last (or to MAX_PAGES)."""
        tuning_job = self.rng.choice(TUNING_JOBS)
        walk(self.post, ACCOUNT, tuning_job, random_query(self.rng), MAX_PAGES)
