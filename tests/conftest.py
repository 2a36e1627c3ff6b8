"""Test-wide setup: eventlet first, then the real servers every non-unit test uses.

nameko's containers run on eventlet in this process, so the monkey patch must come
before anything imports sockets or threads.
"""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from tests import servers  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.option.suppress_eventlet_notification = True
    endpoints = servers.start()
    config.option.RABBIT_AMQP_URI = endpoints.amqp_uri
    config.option.RABBIT_API_URI = endpoints.rabbit_api_uri
    os.environ["MONGO_URI"] = endpoints.mongo_uri


def pytest_unconfigure(config: pytest.Config) -> None:
    servers.stop()


@pytest.fixture(scope="session")
def mongo_client() -> Iterator[MongoClient[dict[str, object]]]:
    client: MongoClient[dict[str, object]] = MongoClient(os.environ["MONGO_URI"], serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture
def fresh_database(mongo_client: MongoClient[dict[str, object]]) -> Iterator[str]:
    """A database name no other test uses; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    mongo_client.drop_database(name)
