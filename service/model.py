"""The botocore service model shipped in the package, for AWS SDKs and the CLI."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

SERVICE_NAME = "sagemakerhpo"
API_VERSION = "2017-11-08"


def data_path() -> Path:
    """The folder to put on AWS_DATA_PATH: it holds `sagemakerhpo/2017-11-08/`."""
    return Path(str(resources.files(__package__).joinpath("data")))


def service_model_file() -> Path:
    """The service-2.json file, as `aws configure add-model` takes it."""
    return data_path() / SERVICE_NAME / API_VERSION / "service-2.json"


def model_path_command(argv: list[str]) -> int:
    """`python -m service model-path`: print the folder for AWS_DATA_PATH."""
    parser = argparse.ArgumentParser(
        prog="sagemakerhpo model-path",
        description="Print the folder that holds the botocore model of "
        f"{SERVICE_NAME} {API_VERSION}; point AWS_DATA_PATH at it.",
    )
    parser.parse_args(argv)
    print(data_path())
    return 0
