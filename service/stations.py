"""The AirKorea station catalogue shipped with the service (``service/data/stations.csv``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CATALOGUE = Path(__file__).resolve().parent / "data" / "stations.csv"


@dataclass(frozen=True)
class Station:
    """One AirKorea monitoring station."""

    code: str
    name: str
    lat: float
    lon: float
    network: str
    sido: str
    addr: str


@lru_cache(maxsize=1)
def load_stations(path: Path = CATALOGUE) -> tuple[Station, ...]:
    """Read the station catalogue (657 stations; 49 have no official code yet)."""
    with path.open(encoding="utf-8") as fh:
        return tuple(
            Station(
                r["station_code"],
                r["station_name"],
                float(r["lat"]),
                float(r["lon"]),
                r["network"],
                r["sido"],
                r["addr"],
            )
            for r in csv.DictReader(fh)
        )
