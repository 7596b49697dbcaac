"""Typed settings, loaded from ``MEDLABEL_*`` environment variables and validated on load."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medlabel.core.errors import ConfigurationError

DEFAULT_HOME = Path("~/.medlabel")


class Settings(BaseSettings):
    """Everything configurable about a medlabel installation.

    The embedded defaults (SQLite and a local blob folder under ``home``) need no
    configuration. Any SQLAlchemy URL is accepted for ``database_url``.
    """

    model_config = SettingsConfigDict(env_prefix="MEDLABEL_", extra="ignore")

    home: Path = Field(default=DEFAULT_HOME, description="Data directory (database, blobs, logs).")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in home."
    )
    blob_dir: Path | None = Field(default=None, description="Blob folder; default: home/blobs.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    demo: bool = Field(default=False, description="Demo mode: relaxed defaults, sample data.")

    # authentication
    session_hours: float = Field(default=12.0, gt=0)
    cookie_secure: bool = Field(default=False, description="Send the session cookie only on HTTPS.")
    allowed_origins: list[str] = Field(default_factory=list, description="CORS origins.")
    login_max_failures: int = Field(default=10, ge=1, description="Failures before a lockout.")
    login_lockout_seconds: int = Field(default=300, ge=1)
    auth_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a process trusts a checked session, token or membership; "
        "logouts and role changes reach other worker processes within this time.",
    )

    audit_read_window_seconds: float = Field(
        default=600.0,
        ge=0,
        description="The audit log records one image.read per user, image and kind of data "
        "per this many seconds (0: every read).",
    )

    # limits on input
    max_upload_bytes: int = Field(default=20 * 1024**3, gt=0, description="Multipart uploads.")
    max_json_bytes: int = Field(default=512 * 1024**2, gt=0, description="Other request bodies.")
    max_archive_members: int = Field(default=100_000, gt=0)
    max_archive_bytes: int = Field(default=50 * 1024**3, gt=0, description="Unpacked zip size.")
    max_archive_ratio: float = Field(default=200.0, gt=1, description="Zip expansion ratio.")
    max_voxels: int = Field(default=2_000_000_000, gt=0, description="Voxels in one image.")

    # caches and workers
    volume_cache_bytes: int = Field(default=1024**3, ge=0)
    import_workers: int = Field(
        default=0, ge=0, le=64, description="Processes for imports; 0 = one per core (max 4)."
    )
    prestart_workers: bool = Field(
        default=False, description="Start import workers with the server (set by `serve`)."
    )

    # background jobs (export, pre-annotation, training)
    job_workers: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Threads running background jobs in each server process (they share "
        "the CPU with requests: keep this small).",
    )
    job_heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often a running job writes a sign of life and looks for a cancel "
        "request made by another process.",
    )
    job_stale_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A running job without a sign of life for this long is treated as "
        "interrupted (its process died); at least 3 heartbeats.",
    )

    # scale-out: object storage, database pool, cluster, PACS receiver, logs
    blob_url: str | None = Field(
        default=None,
        description="Object storage for blobs instead of blob_dir, e.g. s3://bucket/prefix "
        "(credentials from the usual AWS_* variables or the s3_* settings).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint of a non-AWS server, e.g. http://127.0.0.1:8333."
    )
    s3_region: str | None = Field(default=None, description="S3 region name.")
    s3_access_key_id: str | None = Field(default=None, description="S3 access key id.")
    s3_secret_access_key: str | None = Field(default=None, description="S3 secret key.")
    db_pool_size: int = Field(
        default=10, ge=1, le=1000, description="Pooled connections (PostgreSQL and other servers)."
    )
    db_max_overflow: int = Field(
        default=20, ge=0, le=1000, description="Connections opened beyond the pool under load."
    )
    ray_address: str | None = Field(
        default=None,
        description="Run background jobs on this Ray cluster (e.g. 127.0.0.1:6380 or "
        "ray://host:10001) instead of threads of the server process.",
    )
    dicom_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Listen for DICOM C-STORE on this port (studies routed to projects by "
        "called AE title); off when unset.",
    )
    dicom_ae_title: str = Field(
        default="MEDLABEL", min_length=1, max_length=16, description="The receiver's AE title."
    )
    dicom_host: str | None = Field(
        default=None, description="Address the DICOM receiver listens on; default: host."
    )
    dicom_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="The receiver imports a study this long after its last instance arrived "
        "if the sender keeps the association open (else when the association ends).",
    )
    log_format: str = Field(
        default="text", pattern="^(text|json)$", description="Log lines: text or json."
    )

    # annotation engines
    preload_engines: list[str] = Field(
        default_factory=lambda: ["litemedsam"],
        description="Engines the server loads in the background at start-up, so the first "
        "request does not wait for a model; missing ones are logged and skipped. [] for none.",
    )

    @field_validator("home", "blob_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _check_secure(self) -> Settings:
        if "*" in self.allowed_origins:
            raise ConfigurationError(
                "MEDLABEL_ALLOWED_ORIGINS may not contain '*': cookies are sent with requests, "
                "so list the exact origins of your front ends instead"
            )
        return self

    @model_validator(mode="after")
    def _check_jobs(self) -> Settings:
        if self.job_stale_seconds < 3 * self.job_heartbeat_seconds:
            raise ConfigurationError(
                "MEDLABEL_JOB_STALE_SECONDS must be at least 3 x MEDLABEL_JOB_HEARTBEAT_SECONDS, "
                "or running jobs of live processes would be taken for interrupted ones"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<home>/medlabel.db``."""
        return self.database_url or f"sqlite:///{self.home / 'medlabel.db'}"

    @property
    def resolved_blob_dir(self) -> Path:
        """The blob folder, defaulting to ``<home>/blobs``."""
        return self.blob_dir or self.home / "blobs"
