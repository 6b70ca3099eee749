"""An independent reader's view of the files we write: PseudoNetCDF opens them as I/O API.

This check runs in its own environment (``make test-pnc``, a CI step of its own), never in
the main suite: PseudoNetCDF 3.5 requires numpy<2 and registers itself as an xarray backend,
and the main suite must run on the stack a plain ``pip install -e .`` gives users.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from service.settings import GridSpec
from service.twin.archive import generate
from service.twin.sample import SampleDay

pytestmark = pytest.mark.pseudonetcdf

DAY = dt.date(2021, 1, 9)


def _pnc():  # type: ignore[no-untyped-def]
    import PseudoNetCDF  # a failure here is a failure: this environment exists to run it

    return PseudoNetCDF


def test_independent_reader_pseudonetcdf_agrees(sample_day: SampleDay) -> None:
    pnc = _pnc()
    path: Path = sample_day.cmaq[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = pnc.pncopen(str(path), format="ioapi")
        times = list(f.getTimes())
        proj = f.getproj(withgrid=True)
        col, row = proj(126.978, 37.5665)
        pm = np.asarray(f.variables["PM2_5"][:])
        units = f.variables["PM2_5"].units.strip()
    assert times[0] == dt.datetime(2024, 1, 8, 15, tzinfo=dt.UTC)
    assert times[-1] == dt.datetime(2024, 1, 9, 14, tzinfo=dt.UTC)
    # pseudonetcdf counts from the parent grid's corner; the service grid starts 4 cols, 7 rows in.
    assert (int(col) - 4, int(row) - 7) == (25, 52)
    with netCDF4.Dataset(path) as ds:
        np.testing.assert_array_equal(pm, ds.variables["PM2_5"][:])
    assert units == "ug/m**3"


def test_pseudonetcdf_reads_the_twins_cmaq_and_analysis_files(tmp_path: Path) -> None:
    pnc = _pnc()
    generate(GridSpec(), DAY, DAY, tmp_path, workers=1, progress=False)
    for kind in ("cmaq", "analysis"):
        path = next((tmp_path / kind / f"{DAY:%Y%m%d}").glob("*.nc"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = pnc.pncopen(str(path), format="ioapi")
            times = list(f.getTimes())
        assert times[0] == dt.datetime(2021, 1, 8, 15, tzinfo=dt.UTC) and len(times) == 24
