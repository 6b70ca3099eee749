"""Analysis reader: the PM2.5 data-assimilation analysis (truth) for KST day D, I/O API files.

Same conventions as CMAQ output; used to train the model and to verify past forecasts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from service.features import TARGET
from service.grid import Grid
from service.ingest.cmaq import Species, read_ioapi_day
from service.ingest.common import SourceFields

ANALYSIS_SPECIES = (Species(TARGET, ("PM25_TOT", "PM2_5", "PM25"), gas=False),)


def read_analysis(paths: Sequence[str | Path], date: dt.date, grid: Grid) -> SourceFields:
    """Read the analysed PM2.5 (ug/m3) for the 24 hours of KST day ``date``.

    Parameters
    ----------
    paths
        One or more I/O API files holding UTC ``D-1 15:00 .. D 14:00``.
    date
        The target day D (KST).
    grid
        The service grid.

    Returns
    -------
    SourceFields
        A ``(24, nrows, ncols)`` field ``pm25`` and provenance.

    Notes
    -----
    The same checks and rules for stray and duplicate files as :func:`read_cmaq`.
    """
    return read_ioapi_day(paths, date, grid, ANALYSIS_SPECIES, "analysis")
