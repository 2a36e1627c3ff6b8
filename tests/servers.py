"""Where the test servers are: native ones (default) or testcontainers.

One switch, ``CONCILIARE_TEST_INFRA``:
- ``native`` (default): the servers `scripts/infra/start.sh` runs on loopback
  (`make test` starts them if they are not running).
- ``docker``: RabbitMQ, MongoDB and MinIO in throwaway containers (testcontainers),
  for machines with a Docker engine.
- ``auto``: docker when a Docker engine answers, native otherwise.
"""

import os
from dataclasses import dataclass
from typing import Any

_containers: list[Any] = []


@dataclass(frozen=True)
class Endpoints:
    amqp_uri: str
    rabbit_api_uri: str
    mongo_uri: str
    minio_endpoint: str


NATIVE = Endpoints(
    amqp_uri=os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"),
    rabbit_api_uri=os.environ.get("RABBIT_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672"),
    mongo_uri=os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/"),
    minio_endpoint=os.environ.get("MINIO_ENDPOINT", "127.0.0.1:9000"),
)


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers depends on it

        docker.from_env().ping()
        return True
    except Exception:
        return False


def start() -> Endpoints:
    mode = os.environ.get("CONCILIARE_TEST_INFRA", "native")
    if mode == "native" or (mode == "auto" and not _docker_answers()):
        return NATIVE
    from testcontainers.minio import MinioContainer
    from testcontainers.mongodb import MongoDbContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    rabbit = RabbitMqContainer("rabbitmq:3-management").with_exposed_ports(5672, 15672)
    mongo = MongoDbContainer("mongo:7")
    minio = MinioContainer()
    for container in (rabbit, mongo, minio):
        container.start()
        _containers.append(container)
    host = rabbit.get_container_host_ip()
    endpoints = Endpoints(
        amqp_uri=f"pyamqp://guest:guest@{host}:{rabbit.get_exposed_port(5672)}/",
        rabbit_api_uri=f"http://guest:guest@{host}:{rabbit.get_exposed_port(15672)}",
        mongo_uri=mongo.get_connection_url(),
        minio_endpoint=f"{minio.get_container_host_ip()}:{minio.get_exposed_port(9000)}",
    )
    os.environ["MINIO_ENDPOINT"] = endpoints.minio_endpoint
    return endpoints


def stop() -> None:
    while _containers:
        _containers.pop().stop()
