"""moto's server, holding a given number of SageMaker training jobs.

The jobs are created through moto's SageMaker backend in this process, the
code its `CreateTrainingJob` handler calls: ten thousand take well under a
second here, against about a minute over HTTP with boto3 (6.4 ms a call).
"""

from __future__ import annotations

import argparse
import signal
import threading

from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


def seed(count: int) -> None:
    """Create `count` training jobs, each with two hyperparameters."""
    backend = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]
    for number in range(count):
        backend.create_training_job(
            training_job_name=f"job-{number:07d}",
            hyper_parameters={"learning_rate": "0.01", "batch_size": "64"},
            algorithm_specification={
                "TrainingImage": "example/image",
                "TrainingInputMode": "File",
            },
            role_arn=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/bench",
            input_data_config=[],
            output_data_config={"S3OutputPath": "s3://bench/out"},
            resource_config={
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 10,
            },
            vpc_config=None,  # type: ignore[arg-type]
            stopping_condition={"MaxRuntimeInSeconds": 3600},
            tags=[],
            enable_network_isolation=False,
            enable_inter_container_traffic_encryption=False,
            enable_managed_spot_training=False,
            checkpoint_config=None,  # type: ignore[arg-type]
            debug_hook_config=None,  # type: ignore[arg-type]
            debug_rule_configurations=None,  # type: ignore[arg-type]
            tensor_board_output_config=None,  # type: ignore[arg-type]
            experiment_config=None,  # type: ignore[arg-type]
        )


def main() -> None:
    """`python bench/moto_server.py --port P --jobs N`: seed, serve until TERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    args = parser.parse_args()

    seed(args.jobs)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port)
    stop = threading.Event()
    for sign in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sign, lambda *_: stop.set())
    server.start()
    try:
        stop.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
