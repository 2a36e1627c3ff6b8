"""Settings shared by every process, read from environment variables.

Defaults match native mode (`make run`): every server on loopback with the ports
that `scripts/infra/start.sh` uses.
"""

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    amqp_uri: str = Field("amqp://guest:guest@127.0.0.1:5672/", alias="AMQP_URI")
    rabbit_management_uri: str = Field("http://guest:guest@127.0.0.1:15672", alias="RABBIT_MANAGEMENT_URI")
    mongo_uri: str = Field("mongodb://127.0.0.1:27017/", alias="MONGO_URI")
    # Every service's database name is prefixed, so tests can use throwaway ones.
    mongo_db_prefix: str = Field("conciliare_", alias="MONGO_DB_PREFIX")
    minio_endpoint: str = Field("127.0.0.1:9000", alias="MINIO_ENDPOINT")
    minio_access_key: str = Field("conciliare", alias="MINIO_ACCESS_KEY")
    minio_secret_key: SecretStr = Field(SecretStr("conciliare-secret"), alias="MINIO_SECRET_KEY")
    minio_secure: bool = Field(False, alias="MINIO_SECURE")
    rpc_timeout_seconds: float = Field(10.0, alias="RPC_TIMEOUT_SECONDS")

    def database_name(self, service: str) -> str:
        return f"{self.mongo_db_prefix}{service}"


@lru_cache
def get_platform_settings() -> PlatformSettings:
    return PlatformSettings()
