"""The ``pm25`` command line: one entry point for every process of the service."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path

import click

from service import __version__

_NOT_YET = "not built yet: see the project's open issues"


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
    click.echo(json.dumps({
        "date": date.isoformat(),
        "shape": list(result.tensor.shape),
        "files": [f.as_dict() for f in result.files],
    }, indent=2))  # fmt: skip


def _pending(name: str, issue: str) -> click.Command:
    @click.command(name=name, help=f"[{_NOT_YET}: {issue}]",
                   context_settings={"ignore_unknown_options": True})  # fmt: skip
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        click.echo(f"pm25 {name}: {_NOT_YET} ({issue}).", err=True)
        sys.exit(2)

    return cmd


for _name, _issue in (
    ("demo", "the API issue completes it"),
    ("twin", "the twin issue"),
    ("run", "the pipeline issue"),
    ("backfill", "the pipeline issue"),
    ("scheduler", "the pipeline issue"),
    ("serve", "the API issue"),
    ("migrate", "the pipeline issue"),
    ("train", "the model issue"),
    ("evaluate", "the model issue"),
):
    main.add_command(_pending(_name, _issue))


if __name__ == "__main__":  # pragma: no cover
    main()
