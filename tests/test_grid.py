"""The service grid: projection, indices and round trips."""

from __future__ import annotations

import csv

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from service.grid import Grid
from service.settings import GridSpec


def test_seoul_city_hall_lands_in_column_25_row_52(grid: Grid) -> None:
    assert grid.cell_of(37.5665, 126.978) == (52, 25)


def test_cell_centres_span_the_documented_box(grid: Grid) -> None:
    lon, lat = grid.centre_lonlat
    assert lon.shape == lat.shape == (68, 59)
    assert 33.1 < lat.min() < 33.3 and 38.7 < lat.max() < 38.9
    assert 124.2 < lon.min() < 124.4 and 130.4 < lon.max() < 130.6


def test_row_zero_is_the_south_edge(grid: Grid) -> None:
    _, lat = grid.centre_lonlat
    assert lat[0].mean() < lat[-1].mean()


def test_cell_centre_of_row_col_matches_ioapi_formula(grid: Grid) -> None:
    x, y = grid.rowcol_to_xy(52, 25)
    assert (x, y) == (-144_000 + 25.5 * 9000, -522_000 + 52.5 * 9000)


def test_outside_points_have_no_cell(grid: Grid) -> None:
    assert grid.cell_of(40.0, 116.4) is None  # Beijing
    assert not grid.contains(31.2, 121.5)  # Shanghai


def test_655_of_657_airkorea_stations_fall_inside(grid: Grid, shared_data) -> None:  # type: ignore[no-untyped-def]
    with (shared_data / "airkorea" / "stations.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 657
    inside = sum(grid.contains(float(r["lat"]), float(r["lon"])) for r in rows)
    assert inside == 655


def test_a_configured_grid_moves_with_its_settings() -> None:
    shifted = Grid(GridSpec(xorig_m=-144_000 + 9000))
    assert shifted.cell_of(37.5665, 126.978) == (52, 24)


@given(
    lat=st.floats(33.0, 39.0, allow_nan=False),
    lon=st.floats(124.0, 131.0, allow_nan=False),
)
def test_latlon_rowcol_round_trip(lat: float, lon: float) -> None:
    grid = Grid(GridSpec())
    row, col = grid.latlon_to_rowcol(lat, lon)
    lat2, lon2 = grid.rowcol_to_latlon(row, col)
    assert np.isclose(lat2, lat, atol=1e-9) and np.isclose(lon2, lon, atol=1e-9)


@given(row=st.floats(-0.5, 67.49), col=st.floats(-0.5, 58.49))
def test_rowcol_xy_round_trip_and_cell_lookup(row: float, col: float) -> None:
    grid = Grid(GridSpec())
    x, y = grid.rowcol_to_xy(row, col)
    r2, c2 = grid.xy_to_rowcol(x, y)
    assert np.isclose(r2, row, atol=1e-9) and np.isclose(c2, col, atol=1e-9)
    # Exactly on a cell edge the projection's last bits decide; keep clear of edges.
    fr, fc = (row + 0.5) % 1, (col + 0.5) % 1
    assume(min(fr, 1 - fr, fc, 1 - fc) > 1e-6)
    lat, lon = grid.rowcol_to_latlon(row, col)
    assert grid.cell_of(float(lat), float(lon)) == (
        int(np.floor(row + 0.5)),
        int(np.floor(col + 0.5)),
    )
