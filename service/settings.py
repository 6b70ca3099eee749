"""The one settings object: every knob of the service, read once from ``PM25_*`` and ``.env``.

Nothing else in the service reads the environment. Call :func:`get_settings` at the edges
(the CLI, the API factory, the scheduler) and pass the object, or the parts of it a
component needs, inward.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where the shipped models live: one folder per model (``model.keras`` and its ``card.json``).
MODELS = Path(__file__).resolve().parent.parent / "models"


class GridSpec(BaseModel):
    """The service grid as configuration: an I/O API style Lambert conformal grid.

    Defaults are the 59 x 68 Korean 9 km grid of the paper (PRODUCT.md): standard parallels
    30N/60N, central meridian 126E, origin latitude 38N, sphere of radius 6,370,000 m,
    lower-left corner (-144,000 m, -522,000 m).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "KOREA_09KM"
    lat_1: float = 30.0
    lat_2: float = 60.0
    lon_0: float = 126.0
    lat_0: float = 38.0
    earth_radius_m: float = 6_370_000.0
    xorig_m: float = -144_000.0
    yorig_m: float = -522_000.0
    cell_m: float = 9_000.0
    ncols: int = Field(default=59, gt=0)
    nrows: int = Field(default=68, gt=0)

    def widened(self, margin: int) -> GridSpec:
        """This grid ``margin`` cells wider on each side, on the same projection (the window a
        model with an input margin reads)."""
        if margin == 0:
            return self
        return self.model_copy(
            update={
                "xorig_m": self.xorig_m - margin * self.cell_m,
                "yorig_m": self.yorig_m - margin * self.cell_m,
                "ncols": self.ncols + 2 * margin,
                "nrows": self.nrows + 2 * margin,
            }
        )


class Settings(BaseSettings):
    """All settings of the service; environment variables ``PM25_<NAME>`` override defaults.

    Nested grid fields use a double underscore, e.g. ``PM25_GRID__NCOLS``. Path templates are
    relative to :attr:`inbox` and are formatted with ``date`` (the KST target day D, a
    :class:`datetime.date`) and ``run_date`` (D-1, the day the forecast is made); the result
    may contain glob wildcards, and every file it matches is read.
    """

    model_config = SettingsConfigDict(
        env_prefix="PM25_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: SecretStr = SecretStr("sqlite:///var/pm25.sqlite")
    """SQLAlchemy URL; a secret (it may hold a password): ``.get_secret_value()`` where the
    real URL is needed, :func:`service.storage.db.redact` for logs and messages."""
    inbox: Path = Path("var/inbox")
    cmaq_template: str = "cmaq/{date:%Y%m%d}/*.nc"
    wrf_template: str = "wrf/{date:%Y%m%d}/wrfout_d01_*"
    analysis_template: str = "analysis/{date:%Y%m%d}/*.nc"
    model_path: Path = MODELS / "case3_all" / "model.keras"
    """The model the daily run uses: by default Case 3 with the five changes of the ablation
    (docs/model/ABLATION.md), which beats the paper's Case 3 and raw CMAQ at the peaks;
    ``MODELS / "case3" / "model.keras"`` is the paper's Case 3."""
    grid: GridSpec = GridSpec()
    admin_token: SecretStr = SecretStr("")
    """Guards ``POST /v1/runs/{date}``; the API refuses to start with a weak one (see
    :func:`service.api.auth.token_weakness`), whatever else is set."""
    schedule_time_kst: dt.time = dt.time(18, 0)
    """When the daily run starts, KST (``HH:MM`` in the environment)."""
    deadline_time_kst: dt.time = dt.time(23, 0)
    """When tomorrow's forecast must be published, KST, on the day before the target date."""
    poll_seconds: int = 300
    queue_poll_seconds: int = Field(default=5, gt=0)
    """How often the scheduler looks for re-runs queued through the API."""
    catchup_days: int = 3
    input_settle_seconds: int = 60
    run_lease_seconds: int = Field(default=900, gt=0)
    """A running attempt whose worker has not renewed its lease for this long is interrupted."""
    cmaq_fallback: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_cache_seconds: float = 5.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Level of the service's logs (every process; ``pm25 -v`` forces DEBUG)."""

    @field_validator("cmaq_template", "wrf_template", "analysis_template")
    @classmethod
    def _template_formats(cls, template: str) -> str:
        """A path template must format with the fields the resolver passes (``date`` and
        ``run_date``, see :func:`service.forecast.tensor.resolve_inputs`) into a relative
        glob pattern; a mistake fails at start, not at the first run."""
        day = dt.date(2024, 1, 9)
        try:
            pattern = template.format(date=day, run_date=day - dt.timedelta(days=1))
        except KeyError as exc:
            raise ValueError(
                f"{template!r} names the field {exc}; templates may use {{date}} and "
                "{run_date} (e.g. cmaq/{date:%Y%m%d}/*.nc)"
            ) from None
        except (IndexError, ValueError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"{template!r} is not a valid format string ({exc}); e.g. cmaq/{{date:%Y%m%d}}/*.nc"
            ) from None
        if not pattern.strip() or Path(pattern).is_absolute():
            raise ValueError(f"{template!r} must name files relative to the inbox")
        return template

    @property
    def run_lease(self) -> dt.timedelta:
        """:attr:`run_lease_seconds` as a duration."""
        return dt.timedelta(seconds=self.run_lease_seconds)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()
