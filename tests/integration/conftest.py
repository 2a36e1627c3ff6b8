"""What every interface test of a service needs: its container's nameko config."""

from typing import Any

import pytest


@pytest.fixture
def config(rabbit_uri: str, fresh_database: str) -> dict[str, Any]:
    """A container config on this test's own vhost and database.

    nameko 3's ``rabbit_config`` patches the global config and yields nothing: the
    per-test vhost URI comes from ``rabbit_uri`` and is applied by container_factory.
    """
    return {"AMQP_URI": rabbit_uri, "MONGO_DATABASE": fresh_database}
