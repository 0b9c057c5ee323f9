"""Settings: variables, flags over variables, and one-line refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service import settings

from .tools import beside_interpreter


def test_defaults():
    loaded = settings.load([], environ={})
    assert (loaded.host, loaded.port, loaded.log_level) == ("127.0.0.1", 8080, "INFO")
    assert loaded.embedded
    assert loaded.token_secret_generated
    assert len(loaded.token_secret) == 32


def test_variables_and_flags_over_variables():
    environ = {
        "HPO_HOST": "0.0.0.0",
        "HPO_PORT": "9000",
        "HPO_REDIS_URL": "redis://cache:6379/1",
        "HPO_TOKEN_SECRET": "s3",
        "HPO_LOG_LEVEL": "debug",
    }
    loaded = settings.load(["--port", "9100"], environ=environ)

    assert (loaded.host, loaded.port) == ("0.0.0.0", 9100)
    assert loaded.redis_url == "redis://cache:6379/1"
    assert not loaded.embedded
    assert (loaded.token_secret, loaded.token_secret_generated) == (b"s3", False)
    assert loaded.log_level == "DEBUG"


@pytest.mark.parametrize(
    "environ, fragment",
    [
        ({"HPO_PORT": "http"}, "HPO_PORT (--port) must be a whole number"),
        ({"HPO_PORT": "70000"}, "HPO_PORT (--port) must be between 0 and 65535"),
        ({"HPO_REDIS_URL": "http://u:pw@host"}, "HPO_REDIS_URL (--redis-url)"),
        ({"HPO_LOG_LEVEL": "LOUD"}, "HPO_LOG_LEVEL (--log-level) must be one of"),
        ({"HPO_REDIS_TIMEOUT_S": "0"}, "HPO_REDIS_TIMEOUT_S"),
        ({"HPO_MAX_BODY_BYTES": "10"}, "HPO_MAX_BODY_BYTES"),
    ],
)
def test_bad_settings_name_their_variable(environ, fragment):
    with pytest.raises(settings.SettingsError) as raised:
        settings.load([], environ=environ)
    assert fragment in str(raised.value)
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    "argv, environ",
    [
        (["--port", "abc"], {}),
        ([], {"HPO_REDIS_URL": "memcached://localhost"}),
    ],
)
def test_bad_settings_end_the_process_with_one_line(argv, environ):
    done = subprocess.run(
        [sys.executable, "-m", "service", *argv],
        env={"PATH": "/usr/bin:/bin", **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize("argv", [["--port", "abc"], ["--help"]])
def test_console_script_behaves_as_python_m_service(argv):
    def run(command):
        return subprocess.run(
            [*command, *argv], capture_output=True, text=True, timeout=60
        )

    script = run([beside_interpreter("sagemakerhpo")])
    module = run([sys.executable, "-m", "service"])

    assert (script.returncode, script.stdout) == (module.returncode, module.stdout)
    assert script.stderr.replace("sagemakerhpo", "") == module.stderr.replace(
        "sagemakerhpo", ""
    )
