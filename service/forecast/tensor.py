"""Inbox -> model input: find a date's files, read them, stack the (24, rows, cols, 12) tensor.

The channel order is :data:`service.features.INPUT_FEATURES`, the paper's order, which the
model card records and checks at load time.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from service.errors import MissingInputError, UnreadableInputError
from service.features import FEATURE_NAMES, INPUT_FEATURES
from service.formats.netcdf import require_file
from service.grid import Grid
from service.ingest import FileRecord, SourceFields, read_analysis, read_cmaq, read_wrf
from service.settings import Settings
from service.timeaxis import HOURS, forecast_hours


def resolve_inputs(inbox: str | Path, template: str, date: dt.date) -> list[Path]:
    """The files a path template names for target day ``date``, sorted by name.

    The template is formatted with ``date`` (D) and ``run_date`` (D-1) and may contain glob
    wildcards. Partially written files (``.part``, names starting with a dot) are ignored;
    anything else that matches but is not a readable file is named, never skipped.

    Raises
    ------
    MissingInputError
        No file matches, or a match is a symbolic link whose target does not exist (yet).
    NotNetCDFError
        A match is a directory, another kind of non-file, or a symbolic link loop.
    UnreadableInputError
        A folder on the way to the files cannot be read (permission denied).

    Examples
    --------
    >>> resolve_inputs("/nonexistent", "cmaq/{date:%Y%m%d}/*.nc", dt.date(2024, 1, 9))
    Traceback (most recent call last):
    ...
    service.errors.MissingInputError: /nonexistent/cmaq/20240109/*.nc: no file matches ...
    """
    pattern = template.format(date=date, run_date=date - dt.timedelta(days=1))
    full = Path(inbox) / pattern
    check_folders_readable(Path(inbox), pattern)  # glob skips what it cannot read
    matches = sorted(
        p for p in Path(inbox).glob(pattern) if not p.name.startswith(".") and p.suffix != ".part"
    )
    for p in matches:
        require_file(p)  # a directory or a dangling link is named, not skipped
    if not matches:
        raise MissingInputError(
            full, f"no file matches (template {template!r} for {date} in inbox {inbox})"
        )
    return matches


def check_folders_readable(inbox: Path, pattern: str) -> None:
    """Raise :class:`UnreadableInputError` if a folder the pattern names cannot be listed.

    The folders checked are the inbox and those of the pattern's leading parts without
    wildcards (``cmaq/20240110`` of ``cmaq/20240110/*.nc``); a folder that does not exist
    (yet) is left to the caller, which waits for it.
    """
    folder = inbox
    for part in ("", *Path(pattern).parts[:-1]):
        if glob.has_magic(part):
            return
        folder = folder / part if part else folder
        try:
            with os.scandir(folder):
                pass
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise UnreadableInputError(folder, f"cannot be read: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ModelInputs:
    """One day's model input and where it came from.

    Attributes
    ----------
    date
        Target day D (KST).
    tensor
        ``(24, nrows, ncols, 12)`` float32, channels in :data:`FEATURE_NAMES` order.
    valid_times
        The 24 valid times, aware UTC.
    files
        Provenance of every file read.
    cmaq_pm25
        CMAQ's own PM2.5 (the raw forecast), ``(24, nrows, ncols)``, for fallback and scoring.
    """

    date: dt.date
    tensor: npt.NDArray[np.float32]
    valid_times: list[dt.datetime]
    files: tuple[FileRecord, ...]

    @property
    def cmaq_pm25(self) -> npt.NDArray[np.float32]:
        return self.tensor[..., FEATURE_NAMES.index("pm25")]


def stack_features(cmaq: SourceFields, wrf: SourceFields) -> npt.NDArray[np.float32]:
    """Stack CMAQ and WRF fields into ``(24, nrows, ncols, 12)`` in the paper's channel order."""
    first = cmaq.data[INPUT_FEATURES[0].name]
    out = np.empty((*first.shape, len(INPUT_FEATURES)), np.float32)
    for k, feature in enumerate(INPUT_FEATURES):
        source = cmaq if feature.source == "cmaq" else wrf
        out[..., k] = source.data[feature.name].values
    return out


@dataclass(frozen=True)
class InputPaths:
    """The files a run reads for one target date, resolved once.

    Attributes
    ----------
    cmaq, wrf
        The files each template matched, sorted by name.
    """

    cmaq: tuple[Path, ...]
    wrf: tuple[Path, ...]

    def all(self) -> tuple[Path, ...]:
        """Every file, CMAQ first."""
        return self.cmaq + self.wrf


def find_input_paths(date: dt.date, settings: Settings) -> InputPaths:
    """Resolve the CMAQ and WRF templates for target day ``date``.

    Raises
    ------
    MissingInputError
        A template matches no file.
    """
    return InputPaths(
        cmaq=tuple(resolve_inputs(settings.inbox, settings.cmaq_template, date)),
        wrf=tuple(resolve_inputs(settings.inbox, settings.wrf_template, date)),
    )


def assemble_inputs(
    date: dt.date,
    settings: Settings,
    grid: Grid | None = None,
    *,
    paths: InputPaths | None = None,
) -> ModelInputs:
    """Build the model input for target day ``date`` from the inbox.

    Parameters
    ----------
    date
        The KST day to forecast.
    settings
        Inbox and path templates (and the grid, unless ``grid`` is given).
    grid
        The service grid, if already built.
    paths
        The files to read, if the caller resolved them already (the daily run resolves them
        once, checks that they have settled, and reads exactly those).

    Raises
    ------
    InputFileError
        A subclass naming the file and the problem.
    """
    grid = grid or Grid(settings.grid)
    paths = paths or find_input_paths(date, settings)
    cmaq = read_cmaq(list(paths.cmaq), date, grid)
    wrf = read_wrf(list(paths.wrf), date, grid)
    tensor = stack_features(cmaq, wrf)
    assert tensor.shape == (HOURS, *grid.shape, len(INPUT_FEATURES))
    return ModelInputs(date, tensor, forecast_hours(date), cmaq.files + wrf.files)


def load_truth(date: dt.date, settings: Settings, grid: Grid | None = None) -> SourceFields:
    """Read the analysis (truth) for target day ``date`` from the inbox."""
    grid = grid or Grid(settings.grid)
    return read_analysis(
        resolve_inputs(settings.inbox, settings.analysis_template, date), date, grid
    )
