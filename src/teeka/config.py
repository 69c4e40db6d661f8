"""One typed place for configuration: every setting comes from the environment (prefix TEEKA_)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEEKA_", extra="ignore")

    # "production" (the default) never shows the local SMS outbox page and sends cookies only
    # over HTTPS; "development" (`make run`, the tests) shows every OTP on /dev/outbox to anyone
    # who can reach the server, so it is never the default.
    environment: str = "production"
    database_url: str = "sqlite+aiosqlite:///var/teeka.sqlite3"
    # Secret for tokens and keyed hashes. Empty means: read or create var/secret.key (embedded use).
    secret_key: str = ""
    data_dir: Path = Path("var")

    # Citizen login by OTP.
    otp_ttl_seconds: int = 180
    otp_max_attempts: int = 3
    otp_resend_interval_seconds: int = 30
    otp_daily_limit: int = 10
    citizen_token_minutes: int = 15
    staff_token_minutes: int = 480

    max_beneficiaries_per_account: int = 4

    # Outbox delivery.
    sms_gateway: str = "dev"
    outbox_max_attempts: int = 8
    outbox_backoff_base_seconds: float = 2.0
    embedded_worker: bool = True
    # Every this many seconds each process (web or worker) writes its report for the operators'
    # view (teeka.watch.beat); 0: none (a process the watch does not list).
    beat_seconds: float = Field(default=15.0, ge=0)

    db_pool_size: int = Field(default=10, ge=1)
    # Requests one worker process works on at once; more are refused at once with 503.
    max_in_flight: int = Field(default=256, ge=1)
    # While this many other requests (bookings and the like) are in flight in one worker, the
    # waiting room's polls and joins are refused at once (503 + Retry-After), except a poll by
    # someone whose turn has come: the crowd yields the server to the people it admitted.
    queue_yields_at: int = Field(default=8, ge=1)
    # A request's head must arrive within this many seconds of the connection (or of its first
    # byte on a kept-alive one), its body within the second figure of the head; otherwise the
    # connection is closed (teeka.web.server: slow or idle clients cannot hold sockets).
    http_head_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=30.0, gt=0)
    # Seconds a request may wait for a database connection before it is refused with 503.
    db_pool_timeout: float = 3.0
    # Units of work one worker lets wait for a database connection beyond the pool's own; more
    # are refused at once with 503 (teeka.db.Door), so that a flood of bookings is not queued
    # for seconds until the pool's timeout refuses it anyway.
    db_max_waiting: int = Field(default=32, ge=0)

    # Shared fast state (rate limits, waiting room, snapshot invalidation) across processes.
    # Empty: in-process only (the embedded default).
    redis_url: str = ""
    snapshot_max_age: float = 2.0
    # A snapshot is rebuilt in the background once it is this many seconds from max_age, so
    # readers keep getting an answer younger than max_age without waiting for the build.
    snapshot_refresh_ahead: float = Field(default=0.5, ge=0)

    # Rate limits ("N/period", the `limits` library's notation).
    limits_enabled: bool = True
    limit_public: str = "100/5minutes"
    # OTP sends to one number (counted only when an OTP is sent), from browsers that have not
    # signed in to it before; from one that has (its `teeka_device` cookie), the device's own
    # limits instead, so that someone else's requests cannot lock a person out of their account.
    limit_otp: str = "5/hour"
    limit_otp_device: str = "5/hour"
    limit_otp_device_daily: str = "10/day"
    # OTP sends from one client address (IPv6: its /64), whatever the numbers: SMS pumping.
    limit_otp_client: str = "100/hour"
    limit_search: str = "20/15minutes"
    limit_booking: str = "20/hour"
    # Seconds between the batches that add each process's public-limit hits to Redis.
    limit_sync_interval: float = Field(default=0.2, gt=0)
    log_level: str = "INFO"

    # Vaccination certificates (teeka.certificate): the ES256 signing key, a P-256 private key
    # in PEM (the text, or a path to it). Empty: derived from the secret key (development and
    # a single embedded installation; production sets its own and publishes its public key).
    certificate_key: str = ""
    # Public keys (PEM, one or more) the state signed certificates with before: a certificate
    # printed then still checks after the key is changed.
    certificate_previous_keys: str = ""
    certificate_issuer: str = "Health Department, Chhattisgarh"
    certificate_valid_days: int = Field(default=365, ge=1)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    def resolved_secret(self) -> str:
        if self.secret_key:
            return self.secret_key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
