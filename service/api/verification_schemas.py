"""Response models of the verification routes (every score of a date, the daily series).

Timestamps are ISO 8601 in KST; dates are KST days (the API's one time convention).
"""

from __future__ import annotations

import datetime as dt

from pydantic import AwareDatetime, BaseModel, Field

from service.api.schemas import RunRef


class FieldScores(BaseModel):
    """Scores over all cell-hours (or over the stations' cells, hour by hour)."""

    n: int = Field(description="cell-hours (station-hours) scored")
    rmse: float
    bias: float = Field(description="mean of forecast - analysis")
    mae: float
    r: float | None = Field(description="Pearson correlation (None when a field is constant)")
    rmse_by_hour: list[float] = Field(description="RMSE of each hour 00-23 KST")
    spatial_rmse_by_hour: list[float] | None = Field(
        default=None, description="the paper's spatial RMSE of each hour (for one day: the same)"
    )


class EventScores(BaseModel):
    """A yes/no event of the daily-mean grade, counted over cells."""

    hits: int
    misses: int
    false_alarms: int
    correct_negatives: int
    pod: float | None = Field(description="probability of detection")
    far: float | None = Field(description="false-alarm ratio")
    csi: float | None = Field(description="critical success index")


class GradeScores(BaseModel):
    """Korean grades of each cell's daily mean (0-15, 16-35, 36-75, >= 76 ug/m3)."""

    table: list[list[int]] = Field(
        description="4 x 4 counts; rows: the analysis' grade, columns: the forecast's"
    )
    accuracy: float | None
    bad_or_worse: EventScores = Field(description="daily mean >= 36 ug/m3")
    very_bad: EventScores = Field(description="daily mean >= 76 ug/m3")


class PeakScores(BaseModel):
    """The cell-hours whose analysis is at or above the threshold."""

    threshold: float
    n: int
    rmse: float | None


class Skill(BaseModel):
    """The model's MSE skill score 1 - MSE/MSE_ref."""

    vs_cmaq: float | None
    vs_persistence: float | None


class SourceScores(BaseModel):
    """Every score of one forecast source on one date."""

    cells: FieldScores
    stations: FieldScores | None = Field(description="at the cells of the AirKorea stations")
    grades: GradeScores
    peak: PeakScores


class VerificationDay(BaseModel):
    """Every score of a date's published forecast, raw CMAQ and persistence."""

    target_date: dt.date
    run: RunRef = Field(description="the published run of the date")
    verified_run_id: int = Field(description="the run these scores are of")
    current: bool = Field(description="the scores are of the run published now")
    computed_at: AwareDatetime
    hours: list[AwareDatetime] = Field(description="the 24 valid times the hourly scores are of")
    model: SourceScores
    cmaq: SourceScores | None = Field(description="raw CMAQ PM2.5 of the run's own CMAQ files")
    persistence: SourceScores | None = Field(description="the previous day's analysis")
    skill: Skill
    notes: list[str]
    synthetic: bool = Field(description="the model was trained on SYNTHETIC twin data")


class VerificationPoint(BaseModel):
    """One verified date in the series."""

    date: dt.date
    run_id: int
    model_rmse: float
    cmaq_rmse: float | None
    persistence_rmse: float | None
    skill_vs_cmaq: float | None
    skill_vs_persistence: float | None
    model_peak_rmse: float | None
    cmaq_peak_rmse: float | None
    worse_than_cmaq: bool | None


class Window(BaseModel):
    """The model against raw CMAQ over the verified days of a window."""

    start: dt.date
    end: dt.date
    days: int
    model_rmse: float | None
    cmaq_rmse: float | None
    skill_vs_cmaq: float | None
    days_worse_than_cmaq: int


class VerificationSeries(BaseModel):
    """The daily series of a period and a rolling summary ending at its last date."""

    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to")
    days: list[VerificationPoint]
    last_7_days: Window
    last_30_days: Window
    days_worse_than_cmaq: list[dt.date]
    synthetic: bool = Field(
        description="a model trained on SYNTHETIC twin data made one of the listed forecasts"
    )

    model_config = {"populate_by_name": True}
