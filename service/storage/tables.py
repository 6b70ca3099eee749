"""Database tables (SQLAlchemy 2). Fields are stored as one compressed float32 array per run.

Every attempt at a date is a row of ``runs``; ``publications`` points at the one run whose
field is served for a date, so a re-run replaces the published forecast by moving one pointer
inside the transaction that stores its field, and a failed re-run leaves it untouched.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class RunStatus(enum.StrEnum):
    """The life of one attempt at a date."""

    PENDING = "pending"
    WAITING = "waiting_for_inputs"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LATE = "late"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime, dict[str, Any]: JSON}


class ModelRecord(Base):
    """A model artifact that produced forecasts, identified by its ``artifact_sha256`` (weights
    and every card field that changes the output)."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(100))
    case: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    synthetic: Mapped[bool] = mapped_column(Boolean)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Run(Base):
    """One attempt to produce the forecast of a target date."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("target_date", "attempt", name="uq_run_attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_date: Mapped[dt.date] = mapped_column(Date, index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(
        Enum(
            RunStatus,
            name="run_status",
            values_callable=lambda e: [m.value for m in e],
            native_enum=False,
            length=32,
        ),
        index=True,
    )
    trigger: Mapped[str] = mapped_column(String(32), default="manual")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """A running attempt's lease: renewed at every stage; stale means the worker is gone."""
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cmaq_init: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    wrf_init: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str] = mapped_column(String(128), default="")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True)

    model: Mapped[ModelRecord | None] = relationship(lazy="joined")


class RunField(Base):
    """The forecast field of a run: ``(24, rows, cols)`` float32, zlib-compressed."""

    __tablename__ = "run_fields"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    hours: Mapped[int] = mapped_column(Integer)
    nrows: Mapped[int] = mapped_column(Integer)
    ncols: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(32), default="zlib-f32le")
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Publication(Base):
    """Which run's field is served for a target date."""

    __tablename__ = "publications"

    target_date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    run: Mapped[Run] = relationship(lazy="joined")


class Heartbeat(Base):
    """The last sign of life of a long-running component (the scheduler)."""

    __tablename__ = "heartbeats"

    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class VerificationScore(Base):
    """The scores of one forecast source for one verified date (``model``, ``cmaq`` or
    ``persistence``), naming the published run it scored. Re-verifying a date replaces its
    rows; the headline numbers are columns, every score is in ``scores``."""

    __tablename__ = "verification_scores"
    __table_args__ = (UniqueConstraint("target_date", "source", name="uq_verification_source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_date: Mapped[dt.date] = mapped_column(Date, index=True)
    source: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    computed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    rmse: Mapped[float] = mapped_column(Float)
    bias: Mapped[float] = mapped_column(Float)
    mae: Mapped[float] = mapped_column(Float)
    r: Mapped[float | None] = mapped_column(Float, nullable=True)
    station_rmse: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_rmse: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_n: Mapped[int] = mapped_column(Integer, default=0)
    grade_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    skill_vs_cmaq: Mapped[float | None] = mapped_column(Float, nullable=True)
    skill_vs_persistence: Mapped[float | None] = mapped_column(Float, nullable=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The analysis (and, for CMAQ, the run's CMAQ) files scored against, with sha256."""
