"""Typed settings, read from HUB_* environment variables (pydantic-settings); nothing reads os.environ at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_SIGNING_KEY = "dev-only-signing-key-change-me-0123456789"


class Settings(BaseSettings):
    """Everything a deployment can change. Defaults give the embedded mode: SQLite, in-process tasks, no Redis."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    environment: str = "dev"
    database_url: str = "sqlite+aiosqlite:///./zorgnet.db"
    database_schema: str | None = None  # PostgreSQL schema (search_path); tests use one per run
    redis_url: str | None = None  # None -> embedded mode (in-process cache, pub/sub and tasks)
    base_url: str = "http://127.0.0.1:8000"
    profiles_dir: Path = PROJECT_ROOT / "profiles"
    signing_key: SecretStr = SecretStr(DEV_SIGNING_KEY)
    token_ttl_seconds: int = 3600
    token_issuer: str = "zorgnet-hub"
    # search limits
    default_count: int = 20
    max_count: int = 500
    max_snapshot: int = 50_000
    max_include: int = 1000
    max_bundle_entries: int = 1000
    max_ingest_entries: int = 50_000  # one adapter message/file (a regional bed overview) is one transaction
    max_body_bytes: int = 10 * 1024 * 1024
    max_json_depth: int = 64
    # back-pressure: requests in flight per process before answering 503
    max_in_flight: int = 256
    # group commit: concurrent single-resource writes share one transaction of at most this many (1 = off)
    group_commit_max: int = 32
    # batches written side by side per process (measured on PostgreSQL: 2 gave no more writes/s than 1)
    group_commit_concurrency: int = 1
    # under load a batch waits up to this long for as many requests as recent batches held (0 = never waits)
    group_commit_linger_ms: float = 5.0
    # PostgreSQL, writes done together (bed status): two batches side by side, each of 8 or its fair share of what
    # is queued — one batch's statement overlaps the other's requests and responses (hub/store/group_commit.py)
    group_commit_together_max: int = 8
    group_commit_together_concurrency: int = 2
    db_pool_size: int = 10
    rate_limit_per_minute: int = 0  # per client (token subject); 0 = off
    json_logs: bool = False
    log_level: str = "INFO"
    # availability
    stale_after_minutes: int = 24 * 60
    # referrals: JSON overrides of hub.referrals.policy.RoutingPolicy (weights, deadlines, coordination point)
    referral_policy_file: Path | None = None
    # embedded demo
    demo_on_start: bool = False
    task_mode: str = "auto"  # auto | inprocess | celery
    # ingest (hub/ingest): MLLP listener in the API process when a port is set; HL7 bed feed freshness
    mllp_port: int | None = None
    mllp_host: str = "127.0.0.1"
    ingest_hl7_live_hours: int = 7 * 24
    sql_echo: bool = False

    @model_validator(mode="after")
    def _refuse_dev_key_in_production(self) -> Settings:
        if self.environment == "production" and self.signing_key.get_secret_value() == DEV_SIGNING_KEY:
            raise ValueError("HUB_SIGNING_KEY must be set in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_celery(self) -> bool:
        if self.task_mode == "auto":
            return self.redis_url is not None
        return self.task_mode == "celery"


@lru_cache
def get_settings() -> Settings:
    return Settings()
