"""The ``pm25`` command line: one entry point for every process of the service."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from service import __version__

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from service.settings import Settings


def _date(value: str) -> dt.date:
    """A date written exactly ``YYYY-MM-DD``, as the API takes it (not ``20261207``, which
    Python's ``date.fromisoformat`` would read)."""
    import re

    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise click.BadParameter(f"{value[:100]!r} is not a date: use YYYY-MM-DD")


class DateType(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.date:
        if isinstance(value, dt.date):
            return value
        return _date(str(value))


DATE = DateType()

#: A random seed: NumPy and TensorFlow take 0 .. 2**32 - 1.
SEED = click.IntRange(0, 2**32 - 1)


def _refuse_run_date(date: dt.date, option: str = "--date") -> None:
    """Stop in one line (exit 1) for a target date outside the window ``pm25 run`` and
    ``POST /v1/runs/{date}`` accept (:func:`service.api.deps.run_date_refusal`)."""
    from service.api.deps import run_date_refusal

    refusal = run_date_refusal(date)
    if refusal is not None:
        raise click.ClickException(f"{option}: {refusal}")


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


def operational_message(exc: BaseException) -> str | None:
    """One clear line for an operational error (database, schema, settings, token), or None.

    Database errors name the database with its password hidden and never show SQL.
    """
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

    from service.storage.db import DatabaseMissingError, DatabaseUrlError, driver_reason
    from service.storage.migrate import SchemaNotReadyError

    if isinstance(exc, SchemaNotReadyError):
        return str(exc)
    if isinstance(exc, DatabaseUrlError | DatabaseMissingError):
        # as `pm25 serve` says it (service.api.server.check_database)
        return f"PM25_DATABASE_URL ({_database_for_messages()}) is not usable: {exc}"
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"PM25_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        return f"invalid settings: {problems}"
    if isinstance(exc, OperationalError | ProgrammingError) and "no such table" in str(exc):
        return "the database has no schema yet: run `pm25 migrate` first"
    if isinstance(exc, OperationalError):
        return f"the database is unreachable ({_database_for_messages()}): {driver_reason(exc)}"
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({type(exc).__name__}); run with --debug for details"
    if isinstance(exc, RuntimeError) and "PM25_ADMIN_TOKEN" in str(exc):
        return str(exc)
    return None


def _database_for_messages() -> str:
    from service.settings import get_settings
    from service.storage.db import redact

    try:
        return redact(get_settings().database_url)
    except Exception:  # settings themselves are broken: say less
        return "PM25_DATABASE_URL"


class Pm25Group(click.Group):
    """The ``pm25`` group: operational errors end in one line and exit 1 (``--debug``: raise)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get("pm25.debug"):
                raise
            message = operational_message(exc)
            if message is None:
                message = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
            click.echo(f"Error: {message}", err=True)
            ctx.exit(1)


@click.group(cls=Pm25Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pm25")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("--debug", is_flag=True, help="Show the traceback of an operational error.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, debug: bool) -> None:
    """Tomorrow's hourly PM2.5 over South Korea: CMAQ + WRF -> ConvLSTM (Case 3) -> HTTP."""
    from service.logs import configure_logging
    from service.settings import get_settings

    ctx.meta["pm25.debug"] = debug
    configure_logging("DEBUG" if verbose or debug else get_settings().log_level)


@main.command()
@click.option("--date", "date", type=DATE, required=True, help="Target day D (KST).")
@click.option("--save", type=click.Path(path_type=Path), help="Write the tensor to a .npy file.")
def inputs(date: dt.date, save: Path | None) -> None:
    """Read the inbox for DATE and build the (24, 68, 59, 12) input tensor; print provenance.

    DATE must lie in the window of ``pm25 run --date``.
    """
    from service.errors import InputFileError
    from service.forecast.tensor import assemble_inputs
    from service.settings import get_settings

    _refuse_run_date(date)
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
@click.option("--seed", type=SEED, default=0, show_default=True, help="World and error seed.")
@click.option(
    "--style",
    type=click.Choice(["aconc", "combine"]),
    default="aconc",
    show_default=True,
    help="CMAQ files as ACONC (ppmV) or COMBINE (ppbV).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Processes (default: all cores)."
)
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
    from service.twin.files import CmaqStyle

    if end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}")
    days = generate(
        get_settings().grid,
        start,
        end,
        out,
        seed=seed,
        style=cast("CmaqStyle", style),  # click's Choice checked it
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
@click.option(
    "--check-year",
    "check_years",
    type=click.IntRange(min=1),
    multiple=True,
    help="A year kept out of the calibration, reported apart (repeatable).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="The archive's seed.")
def twin_report(
    archive: Path,
    out: Path,
    start: dt.date,
    end: dt.date,
    seoul: Path | None,
    check_years: tuple[int, ...],
    seed: int,
) -> None:
    """Measure an archive against the calibration targets; write REPORT.md and plots."""
    from service.twin.report import write_report

    path, ok = write_report(archive, out, start, end, seoul, check_years=check_years, seed=seed)
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
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--filters", type=click.IntRange(min=1), default=36, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--synthetic/--real",
    default=True,
    show_default=True,
    help="Whether the archive is the synthetic twin (recorded in the card).",
)
@click.option(
    "--variant",
    type=click.Choice(
        [
            "val_seasonal",
            "margin",
            "weighted_loss",
            "oversample",
            "residual",
            "all",
            "mse_loss",
            "residual_mse",
        ]
    ),
    default=None,
    help="A Case-3 variant of issue 14 instead of the paper's setup (--case is then 3).",
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
    variant: str | None,
) -> None:
    """Train a ConvLSTM case on an archive the paper's way; write a self-describing artifact."""
    _require_tensorflow()
    from models.train import variant_config
    from service.training.workflow import train_from_archive

    config = None
    if variant is not None:
        config = variant_config(variant, epochs=epochs, filters=filters, seed=seed)
        case = config.case
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
        config=config,
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
@click.option(
    "--baseline",
    "baseline",
    default=None,
    metavar="START:END",
    help="Fit the per-cell linear corrections of raw CMAQ on these days (the training years, "
    "e.g. 2019-01-01:2021-12-31) and score them beside the models.",
)
@click.option("--ablation", is_flag=True, help="Write ABLATION.md beside the report too.")
def evaluate(
    archive: Path,
    models_: tuple[Path, ...],
    start: dt.date,
    end: dt.date,
    out: Path,
    cache: Path | None,
    notes: Path | None,
    record: bool,
    baseline: str | None,
    ablation: bool,
) -> None:
    """Score models and raw CMAQ against the analysis with the paper's metrics; write a report."""
    _require_tensorflow()
    from service.settings import get_settings
    from service.training.workflow import evaluate_on_archive

    period = None
    if baseline is not None:
        try:
            first, last = (dt.date.fromisoformat(v) for v in baseline.split(":"))
        except ValueError:
            raise click.BadParameter("START:END, two ISO dates", param_hint="--baseline") from None
        period = (first, last)
    paths = list(models_) or [get_settings().model_path]
    path = evaluate_on_archive(
        archive,
        paths,
        start,
        end,
        out,
        cache=cache,
        notes=notes,
        record=record,
        baseline_period=period,
        ablation=ablation,
    )
    click.echo(f"report written to {path}")


def _pipeline() -> tuple[Settings, sessionmaker[Session]]:
    """The settings and sessions of a command that runs the pipeline, after checking that the
    database is reachable and migrated, and recovering attempts whose worker is gone."""
    from service.settings import get_settings
    from service.storage import repository as repo
    from service.storage.db import make_engine, redact, session_factory
    from service.storage.migrate import check_schema

    settings = get_settings()
    url = settings.database_url.get_secret_value()
    engine = make_engine(url)
    check_schema(engine, redact(url))
    sessions = session_factory(engine)
    repo.recover_interrupted(sessions, settings.run_lease)
    return settings, sessions


def _wait_until_settled(date: dt.date, settings: Settings) -> None:
    """Wait, with a countdown, until the date's input files have not changed for
    ``input_settle_seconds`` (files delivered a moment ago are still settling)."""
    import time

    from service.errors import MissingInputError
    from service.forecast.tensor import find_input_paths
    from service.jobs import newest_input

    while True:
        try:
            _, age = newest_input(find_input_paths(date, settings))
        except MissingInputError:
            return  # nothing to wait for: the run says what is missing
        left = settings.input_settle_seconds - age
        if left <= 0:
            if sys.stderr.isatty():
                click.echo("", err=True)
            return
        click.echo(
            f"\rinputs for {date} changed {age:.0f} s ago; waiting "
            f"{left:.0f} s for them to settle (--no-wait to skip) ",
            err=True,
            nl=not sys.stderr.isatty(),
        )
        time.sleep(min(left, 1.0) + 0.05)


@main.command()
def migrate() -> None:
    """Bring the database schema to the newest revision (Alembic upgrade head)."""
    from service.settings import get_settings
    from service.storage.db import create_sqlite_folder, redact
    from service.storage.migrate import upgrade

    url = get_settings().database_url.get_secret_value()
    create_sqlite_folder(url)  # the one command that creates a database (and its folder)
    upgrade(url)
    click.echo(f"database {redact(url)} is at the newest schema")


@main.command()
@click.option("--date", "date", type=DATE, required=True, help="Target day D (KST).")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait, with a countdown, for just-delivered input files to settle.",
)
def run(date: dt.date, wait: bool) -> None:
    """Run the pipeline once for target date DATE (idempotent).

    DATE must lie between 2000-01-01 and tomorrow (KST) plus one day, as for
    ``POST /v1/runs/{date}``.
    """
    _refuse_run_date(date)
    _require_tensorflow()
    from service.jobs import run_daily_forecast

    settings, sessions = _pipeline()
    if wait:
        _wait_until_settled(date, settings)
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
    """Run the pipeline for every date START..END; go on past failures and report them.

    START and END must lie in the window of ``pm25 run --date``, START not after END.
    """
    from tqdm import tqdm

    from service.jobs import run_daily_forecast

    if end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}")
    _refuse_run_date(start, "--start")
    _refuse_run_date(end, "--end")
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
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Default: PM25_API_PORT (8000)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing the port (production: about one per core).",
)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """The API process (uvicorn). It reads the database; it never loads the model.

    Refuses to start, with one line and exit status 1, when PM25_ADMIN_TOKEN is weak, when
    PM25_DATABASE_URL does not connect or its schema is missing or behind (run
    ``pm25 migrate``), or when the port cannot be listened on.
    """
    from service.api.auth import WeakTokenError, check_admin_token
    from service.api.server import PreflightError, check_database, check_port, serve_api
    from service.settings import get_settings

    settings = get_settings()
    host = host if host is not None else settings.api_host
    port = port if port is not None else settings.api_port  # --port 0 is not "the default"
    try:
        check_admin_token(settings)
        check_port(host, port)
        check_database(settings.database_url.get_secret_value())
    except (WeakTokenError, PreflightError) as exc:
        raise click.ClickException(str(exc)) from None
    serve_api(host, port, workers=workers, log_level=settings.log_level)


@main.command()
@click.option(
    "--days",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Past days to forecast besides tomorrow (0: tomorrow only).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
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
@click.option("--date", "date", type=DATE, help="One target day (KST) to verify.")
@click.option("--start", type=DATE, help="First target day of a range.")
@click.option("--end", type=DATE, help="Last target day of a range, inclusive.")
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a markdown report with figures for the range into this folder (dates not "
    "yet verified, or re-published since, are verified first).",
)
@click.option("--force", is_flag=True, help="With --report: verify every date again.")
def verify(
    date: dt.date | None,
    start: dt.date | None,
    end: dt.date | None,
    report: Path | None,
    force: bool,
) -> None:
    """Score published forecasts, raw CMAQ and persistence against the analysis; store them."""
    import time

    from tqdm import tqdm

    from service.errors import InputFileError
    from service.storage import verification as vrepo
    from service.verification.job import NotVerifiableError, Verifier, describe

    if date is not None:
        start = end = date
    if start is None or end is None:
        raise click.UsageError("give --date, or --start and --end")
    if end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}")
    settings, sessions = _pipeline()
    dates = [start + dt.timedelta(days=k) for k in range((end - start).days + 1)]
    if report is not None and not force:
        with sessions() as s:
            stale = set(vrepo.dates_to_verify(s, end))
            verified = {r.target_date for r in vrepo.scores_between(s, start, end, full=False)}
        dates = [d for d in dates if d in stale or d not in verified]
    verifier = Verifier(settings, sessions)
    skipped: list[str] = []
    done = []
    t0 = time.perf_counter()
    for day in tqdm(dates, unit="day", desc="verify", disable=len(dates) < 2):
        try:
            done.append(verifier.verify(day))
        except (NotVerifiableError, InputFileError) as exc:
            skipped.append(f"{day}: {exc}")
    elapsed = time.perf_counter() - t0
    for v in done if len(done) == 1 else []:
        click.echo(f"{describe(v)} (run {v.run_id}, {v.seconds:.2f} s)")
    if len(dates) > 1 or not done:
        click.echo(
            f"verified {len(done)} of {len(dates)} dates in {elapsed:.1f} s"
            + (f" ({elapsed / len(done):.2f} s a day)" if done else "")
        )
    for line in skipped:
        click.echo(f"  not verified: {line}")
    if report is not None:
        _verification_report(sessions, start, end, report)
    if not done and not report:
        sys.exit(1)


def _verification_report(
    sessions: sessionmaker[Session], start: dt.date, end: dt.date, out: Path
) -> None:
    from service.storage import verification as vrepo
    from service.storage.tables import Run
    from service.verification.report import Period, write_report

    with sessions() as s:
        rows = vrepo.scores_between(s, start, end)
        days: dict[dt.date, dict[str, Any]] = {}
        for r in rows:
            days.setdefault(r.target_date, {})[r.source] = r.scores
        runs = [s.get(Run, i) for i in sorted({r.run_id for r in rows})]
        models = sorted(
            {
                f"{run.model.name} {run.model.version}" if run.model else "CMAQ fallback"
                for run in runs
                if run is not None
            }
        )
        synthetic = any(run.model is not None and run.model.synthetic for run in runs if run)
    if not days:
        raise click.ClickException(f"no verified date between {start} and {end}")
    command = "pm25 " + " ".join(sys.argv[1:])
    path = write_report(Period(days), out, models=models, synthetic=synthetic, commands=[command])
    click.echo(f"report written to {path}")


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
    from service.timeaxis import kst_iso

    url = get_settings().database_url.get_secret_value()
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
            f"({kst_iso(beat.seen_at)}), more than {max_age} s"
        )
    info = beat.info or {}
    role = "leader" if info.get("leader") else "standby"
    click.echo(
        f"{component} healthy: last heartbeat {age:.0f} s ago ({info.get('worker', '?')}, {role})"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
