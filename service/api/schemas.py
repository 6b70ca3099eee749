"""The API's response models: how a run, a model and the monitoring summary are serialised.

One time convention everywhere: every timestamp is ISO 8601 with an explicit offset, in Korea
Standard Time (``2024-01-09T00:00:00+09:00``), the zone of the target day's hours; dates are
``YYYY-MM-DD`` KST days. A run is serialised by :meth:`RunRef.of` / :meth:`RunInfo.of` only, so
``/v1/forecasts`` and ``/v1/runs`` can never disagree about it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from service.storage.tables import ModelRecord, Run
from service.timeaxis import KST

RunState = Literal["pending", "waiting_for_inputs", "running", "succeeded", "failed", "late"]


def _kst(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(KST) if value is not None else None


class ModelInfo(BaseModel):
    """The model artifact that made a forecast."""

    name: str
    version: str
    case: int
    sha256: str = Field(
        description="artifact_sha256: the weights and every card field that changes the output"
    )
    trained_on_synthetic_data: bool

    @classmethod
    def of(cls, record: ModelRecord) -> ModelInfo:
        return cls(
            name=record.name,
            version=record.version,
            case=record.case,
            sha256=record.sha256,
            trained_on_synthetic_data=record.synthetic,
        )


class RunRef(BaseModel):
    """What every forecast response says about the run that produced it."""

    run_id: int
    target_date: dt.date
    attempt: int
    published_at: AwareDatetime | None = Field(description="when the run finished, KST")
    cmaq_fallback: bool = Field(description="the field is CMAQ's own PM2.5 (the model failed)")
    model: ModelInfo | None
    trained_on_synthetic_data: bool | None
    cmaq_init: AwareDatetime | None
    wrf_init: AwareDatetime | None
    note: str | None

    @classmethod
    def fields_of(cls, run: Run) -> dict[str, Any]:
        """The reference fields of ``run`` (shared by :class:`RunInfo`)."""
        model = ModelInfo.of(run.model) if run.model is not None else None
        if run.fallback:
            note: str | None = "CMAQ's own PM2.5, published because the model could not run"
        elif model is not None and model.trained_on_synthetic_data:
            note = "model trained on SYNTHETIC twin data"
        else:
            note = None
        return {
            "run_id": run.id,
            "target_date": run.target_date,
            "attempt": run.attempt,
            "published_at": _kst(run.finished_at) if run.status.value == "succeeded" else None,
            "cmaq_fallback": run.fallback,
            "model": model,
            "trained_on_synthetic_data": model.trained_on_synthetic_data if model else None,
            "cmaq_init": _kst(run.cmaq_init),
            "wrf_init": _kst(run.wrf_init),
            "note": note,
        }

    @classmethod
    def of(cls, run: Run) -> RunRef:
        return cls(**cls.fields_of(run))


class InputFile(BaseModel):
    """Provenance of one input file the run read."""

    kind: str
    path: str
    size: int
    sha256: str
    init_time: AwareDatetime | None = Field(description="the producing model run's start, KST")

    @classmethod
    def of(cls, record: dict[str, Any]) -> InputFile:
        init = record.get("init_time")
        when = dt.datetime.fromisoformat(init).astimezone(KST) if isinstance(init, str) else None
        return cls(
            kind=record["kind"],
            path=record["path"],
            size=record["size"],
            sha256=record["sha256"],
            init_time=when,
        )


class RunInfo(RunRef):
    """Everything an operator needs to know about one attempt."""

    status: RunState
    published: bool = Field(description="this attempt is the date's published forecast")
    trigger: str
    created_at: AwareDatetime | None
    started_at: AwareDatetime | None
    finished_at: AwareDatetime | None
    stage: str | None = Field(description="the stage a failed or waiting run stopped at")
    error: str | None
    timings_s: dict[str, float] | None
    inputs: list[InputFile]
    field_stats: dict[str, Any] | None

    @classmethod
    def of_run(cls, run: Run, published_id: int | None) -> RunInfo:
        return cls(
            **cls.fields_of(run),
            status=run.status.value,
            published=published_id == run.id,
            trigger=run.trigger,
            created_at=_kst(run.created_at),
            started_at=_kst(run.started_at),
            finished_at=_kst(run.finished_at),
            stage=run.stage,
            error=run.error,
            timings_s=run.timings,
            inputs=[InputFile.of(f) for f in (run.inputs or {}).get("files", [])],
            field_stats=run.stats,
        )


class RunList(BaseModel):
    """A page of the run history, newest first."""

    total: int
    limit: int
    offset: int
    next_offset: int | None
    runs: list[RunInfo]


class RunsOfDate(BaseModel):
    """Every attempt at one target date, oldest first, and which one is published."""

    target_date: dt.date
    published_run_id: int | None
    latest: RunInfo
    attempts: list[RunInfo]


class RunQueued(BaseModel):
    """The answer to an admin's re-run request: what will happen, and where to watch it."""

    run_id: int
    target_date: dt.date
    status: RunState
    message: str
    inputs_present: bool = Field(description="the date's CMAQ and WRF files are in the inbox")
    inputs: str = Field(description="the files found, or what is missing")
    starts_within_s: int | None = Field(
        description="the scheduler looks at the queue this often (None: already running)"
    )
    watch: str = Field(description="where to follow the run")


class DayStatus(BaseModel):
    date: dt.date
    status: RunState | Literal["none"]
    attempts: int
    published: bool
    cmaq_fallback: bool


class TomorrowStatus(BaseModel):
    date: dt.date
    state: RunState | Literal["none"]
    published: bool
    deadline: AwareDatetime
    late: bool
    failed: bool
    error: str | None


class LastSuccess(BaseModel):
    date: dt.date
    run_id: int
    published_at: AwareDatetime | None
    cmaq_fallback: bool


class SchedulerBeat(BaseModel):
    seen_at: AwareDatetime
    age_s: float
    leader: bool


class ModelDrift(BaseModel):
    """Whether the model has drifted: its RMSE over the last 14 verified days against raw
    CMAQ's on the same days (verification, issue 12)."""

    worse_than_cmaq: bool
    window_start: dt.date
    window_end: dt.date
    days: int
    model_rmse: float
    cmaq_rmse: float
    message: str


class Status(BaseModel):
    """The monitoring summary."""

    now: AwareDatetime
    tomorrow: TomorrowStatus
    last_success: LastSuccess | None
    scheduler: SchedulerBeat | None
    last_14_days: list[DayStatus]
    healthy: bool
    model_drift: ModelDrift | None = Field(
        default=None,
        description="the model against raw CMAQ over the last 14 verified days (None before "
        "any verification)",
    )


class Health(BaseModel):
    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    status: Literal["ready"]
