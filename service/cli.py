"""The ``pm25`` command line: one entry point for every process of the service."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service import __version__

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from service.settings import Settings


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


class DateType(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.date):
            return value
        return _date(str(value))


DATE = DateType()


def _require_tensorflow() -> None:
    """Stop in one line when a command runs the model and the ``ml`` extra is not installed.

    Without this check the daily run would quietly publish CMAQ's own PM2.5 (the fallback for
    a model that cannot run), and training would end in an ImportError's traceback.
    """
    import importlib

    try:
        importlib.import_module("keras")  # imports its backend, TensorFlow by default
    except ImportError as exc:
        raise click.ClickException(
            f"this command runs the model, which needs TensorFlow ({exc}): "
            "pip install 'pm25-forecast[ml]' (in a clone: pip install -e '.[ml]')"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pm25")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Tomorrow's hourly PM2.5 over South Korea: CMAQ + WRF -> ConvLSTM (Case 3) -> HTTP."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--date", "date", type=DATE, required=True, help="Target day D (KST).")
@click.option("--save", type=click.Path(path_type=Path), help="Write the tensor to a .npy file.")
def inputs(date: dt.date, save: Path | None) -> None:
    """Read the inbox for DATE and build the (24, 68, 59, 12) input tensor; print provenance."""
    from service.errors import InputFileError
    from service.forecast.tensor import assemble_inputs
    from service.settings import get_settings

    try:
        result = assemble_inputs(date, get_settings())
    except InputFileError as exc:
        raise click.ClickException(str(exc)) from None
    if save:
        import numpy as np

        np.save(save, result.tensor)
    click.echo(
        json.dumps(
            {
                "date": date.isoformat(),
                "shape": list(result.tensor.shape),
                "files": [f.as_dict() for f in result.files],
            },
            indent=2,
        )
    )


@main.group(invoke_without_command=True)
@click.option("--start", type=DATE, help="First target day (KST).")
@click.option("--end", type=DATE, help="Last target day (KST), inclusive.")
@click.option("--out", type=click.Path(path_type=Path), help="Inbox folder to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="World and error seed.")
@click.option(
    "--style",
    type=click.Choice(["aconc", "combine"]),
    default="aconc",
    show_default=True,
    help="CMAQ files as ACONC (ppmV) or COMBINE (ppbV).",
)
@click.option("--workers", type=int, default=None, help="Processes (default: all cores).")
@click.pass_context
def twin(
    ctx: click.Context,
    start: dt.date | None,
    end: dt.date | None,
    out: Path | None,
    seed: int,
    style: str,
    workers: int | None,
) -> None:
    """Write a SYNTHETIC archive of CMAQ, WRF and analysis files for target days START..END.

    The folder is laid out as an inbox: PM25_INBOX=OUT finds every file with the default
    templates. `pm25 twin report DIR` measures an archive against the calibration targets.
    """
    if ctx.invoked_subcommand is not None:
        return
    if start is None or end is None or out is None:
        raise click.UsageError("--start, --end and --out are required")
    from service.settings import get_settings
    from service.twin.archive import generate

    if end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}")
    days = generate(
        get_settings().grid,
        start,
        end,
        out,
        seed=seed,
        style=style,  # type: ignore[arg-type]
        workers=workers,
    )
    click.echo(f"wrote {len(days)} SYNTHETIC days {start}..{end} to {out} (seed {seed})")


@twin.command("report")
@click.argument("archive", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("docs/twin"),
    show_default=True,
    help="Folder for the markdown report and its plots.",
)
@click.option("--start", type=DATE, default="2019-01-01", show_default=True)
@click.option("--end", type=DATE, default="2022-12-31", show_default=True)
@click.option(
    "--seoul",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Seoul's real hourly observations (../shared/data/seoul/...csv).",
)
def twin_report(archive: Path, out: Path, start: dt.date, end: dt.date, seoul: Path | None) -> None:
    """Measure an archive against the calibration targets; write REPORT.md and plots."""
    from service.twin.report import write_report

    path, ok = write_report(archive, out, start, end, seoul)
    click.echo(f"report written to {path}: {'all targets met' if ok else 'some targets MISSED'}")


@main.command()
@click.option(
    "--archive",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="A twin or real archive laid out as an inbox.",
)
@click.option("--case", type=click.IntRange(1, 4), default=3, show_default=True)
@click.option("--start", type=DATE, default="2019-01-01", show_default=True)
@click.option("--end", type=DATE, default="2021-12-31", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for model.keras, card.json and the learning curves.",
)
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for the compact dataset (default: OUT/../dataset).",
)
@click.option("--epochs", type=int, default=200, show_default=True)
@click.option("--filters", type=int, default=36, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--synthetic/--real",
    default=True,
    show_default=True,
    help="Whether the archive is the synthetic twin (recorded in the card).",
)
def train(
    archive: Path,
    case: int,
    start: dt.date,
    end: dt.date,
    out: Path,
    cache: Path | None,
    epochs: int,
    filters: int,
    seed: int,
    synthetic: bool,
) -> None:
    """Train a ConvLSTM case on an archive the paper's way; write a self-describing artifact."""
    _require_tensorflow()
    from service.forecast.training import train_from_archive

    card = train_from_archive(
        archive,
        case,
        start,
        end,
        out,
        cache=cache,
        epochs=epochs,
        filters=filters,
        seed=seed,
        synthetic=synthetic,
    )
    click.echo(
        f"saved {out / 'model.keras'} (case {case}, best epoch "
        f"{card.training['best_epoch']}, sha256 {card.weights_sha256[:12]})"
    )


@main.command()
@click.option(
    "--archive", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True
)
@click.option(
    "--model",
    "models_",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    help="model.keras files (default: the service's model).",
)
@click.option("--start", type=DATE, default="2022-01-01", show_default=True)
@click.option("--end", type=DATE, default="2022-12-31", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("docs/model"), show_default=True
)
@click.option("--cache", type=click.Path(path_type=Path), default=None)
@click.option(
    "--notes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A markdown file appended to the report (the discussion of the results).",
)
@click.option(
    "--record", is_flag=True, help="Store each model's scores in its card.json (test metrics)."
)
def evaluate(
    archive: Path,
    models_: tuple[Path, ...],
    start: dt.date,
    end: dt.date,
    out: Path,
    cache: Path | None,
    notes: Path | None,
    record: bool,
) -> None:
    """Score models and raw CMAQ against the analysis with the paper's metrics; write a report."""
    _require_tensorflow()
    from service.forecast.training import evaluate_on_archive
    from service.settings import get_settings

    paths = list(models_) or [get_settings().model_path]
    path = evaluate_on_archive(
        archive, paths, start, end, out, cache=cache, notes=notes, record=record
    )
    click.echo(f"report written to {path}")


def _pipeline() -> tuple[Settings, sessionmaker[Session]]:
    from service.settings import get_settings
    from service.storage.db import make_engine, session_factory

    settings = get_settings()
    return settings, session_factory(make_engine(settings.database_url))


@main.command()
def migrate() -> None:
    """Bring the database schema to the newest revision (Alembic upgrade head)."""
    from service.settings import get_settings
    from service.storage.db import redact
    from service.storage.migrate import upgrade

    url = get_settings().database_url
    upgrade(url)
    click.echo(f"database {redact(url)} is at the newest schema")


@main.command()
@click.option("--date", "date", type=DATE, required=True, help="Target day D (KST).")
def run(date: dt.date) -> None:
    """Run the pipeline once for target date DATE (idempotent)."""
    _require_tensorflow()
    from service.jobs import run_daily_forecast

    settings, sessions = _pipeline()
    outcome = run_daily_forecast(date, settings=settings, sessions=sessions)
    label = outcome.status.value + (" (CMAQ fallback)" if outcome.fallback else "")
    click.echo(
        f"{date}: {label} (run {outcome.run_id})"
        + (f": {outcome.message}" if outcome.message else "")
    )
    if outcome.status.value != "succeeded":
        sys.exit(1)


@main.command()
@click.option("--start", type=DATE, required=True)
@click.option("--end", type=DATE, required=True)
def backfill(start: dt.date, end: dt.date) -> None:
    """Run the pipeline for every date START..END; go on past failures and report them."""
    from tqdm import tqdm

    from service.jobs import run_daily_forecast

    if end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}")
    _require_tensorflow()
    settings, sessions = _pipeline()
    dates = [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]
    failed = []
    for date in tqdm(dates, unit="day", desc="backfill"):
        outcome = run_daily_forecast(
            date,
            settings=settings,
            sessions=sessions,
            trigger="backfill",
        )
        if outcome.status.value != "succeeded":
            failed.append(f"{date}: {outcome.status.value}: {outcome.message}")
    click.echo(f"{len(dates) - len(failed)} of {len(dates)} dates succeeded")
    for line in failed:
        click.echo(f"  {line}")
    if failed:
        sys.exit(1)


@main.command()
def scheduler() -> None:
    """The long-running scheduler process (one leader per database)."""
    _require_tensorflow()
    from service.scheduler import Scheduler
    from service.settings import get_settings

    Scheduler(get_settings()).run_forever()


@main.command()
@click.option("--host", default=None, help="Default: PM25_API_HOST (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: PM25_API_PORT (8000).")
@click.option("--workers", type=int, default=1, show_default=True)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """The API process (uvicorn). It reads the database; it never loads the model."""
    import uvicorn

    from service.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@main.command()
@click.option(
    "--days", type=int, default=5, show_default=True, help="Past days to forecast besides tomorrow."
)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Where the demo keeps its inbox and database.",
)
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="Start the API and the scheduler after setting up.",
)
def demo(days: int, port: int, folder: Path, serve: bool) -> None:
    """The whole service on embedded defaults, with SYNTHETIC inputs, in one command."""
    _require_tensorflow()
    from service.demo import run_demo

    run_demo(folder, days=days, port=port, serve=serve)


@main.command()
@click.argument("component", type=click.Choice(["scheduler"]))
@click.option(
    "--max-age",
    type=click.IntRange(min=1),
    default=120,
    show_default=True,
    help="Seconds; the scheduler beats every 30 s.",
)
def health(component: str, max_age: int) -> None:
    """Exit 0 if COMPONENT wrote a heartbeat in the last MAX_AGE seconds; else 1, in one line.

    The container health check of the scheduler: it reads the heartbeat the process writes to
    the database, so it needs no process tools in the image and never imports TensorFlow.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from service.settings import get_settings
    from service.storage import repository as repo
    from service.storage.db import make_engine, redact, session_factory

    url = get_settings().database_url
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            beat = repo.last_beat(session, component)
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"{component} unhealthy: database {redact(url)} unavailable ({type(exc).__name__})"
        ) from None
    finally:
        engine.dispose()
    if beat is None:
        raise click.ClickException(f"{component} unhealthy: no heartbeat in {redact(url)}")
    age = (repo.now() - beat.seen_at).total_seconds()
    if age > max_age:
        raise click.ClickException(
            f"{component} unhealthy: last heartbeat {age:.0f} s ago "
            f"({beat.seen_at:%Y-%m-%d %H:%M:%S} UTC), more than {max_age} s"
        )
    info = beat.info or {}
    role = "leader" if info.get("leader") else "standby"
    click.echo(
        f"{component} healthy: last heartbeat {age:.0f} s ago ({info.get('worker', '?')}, {role})"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
