"""The peer: xpublish with xpublish-edr (from PyPI, in a virtual environment of its own made
here) serving the same netCDF field as the API, one uvicorn worker.

The field is the API's own CF netCDF of the day (``/v1/forecasts/{date}/grid?format=netcdf``);
xpublish-edr selects on 1-D projected axes, so the 2-D latitude and longitude are dropped
and the grid mapping made a coordinate (it then projects the query's CRS84 point onto the
Lambert grid itself, and answers the nearest cell).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: What the peer's environment holds (pinned to the series measured).
REQUIREMENTS = ("xpublish>=0.5,<0.6", "xpublish-edr>=0.11,<0.12", "netCDF4>=1.6,<2", "uvicorn<1")
#: The peer's position query at Seoul City Hall (nearest cell, as it selects).
POSITION = "/datasets/pm25/edr/position?coords=POINT(126.978%2037.5665)&parameter-name=pm25"

SERVER = """
import sys

import uvicorn
import xarray as xr
import xpublish
from xpublish_edr import CfEdrPlugin

ds = xr.open_dataset(sys.argv[1]).drop_vars(["lat", "lon"])
ds = ds.set_coords("lambert_conformal_conic").load()
rest = xpublish.Rest({"pm25": ds}, plugins={"edr": CfEdrPlugin()})
uvicorn.run(rest.app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            access_log=False)
"""


def environment(root: Path) -> Path:
    """The peer's Python, in ``root/peer-venv``: made and filled when missing or stale."""
    venv = root / "peer-venv"
    python = venv / "bin" / "python"
    marker = venv / "requirements.txt"
    wanted = "\n".join(REQUIREMENTS)
    if not python.exists() or not marker.exists() or marker.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        marker.write_text(wanted)
    return python


def command(python: Path, netcdf: Path, port: int, folder: Path) -> list[str]:
    """The command that serves ``netcdf`` on ``port`` with the peer (its script in ``folder``)."""
    script = folder / "peer_server.py"
    script.write_text(SERVER)
    return [str(python), str(script), str(netcdf), str(port)]


def versions(python: Path) -> str:
    """The peer's package versions, as the report names them."""
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; "
         "print(', '.join(f'{p} {m.version(p)}' for p in "
         "('xpublish', 'xpublish-edr', 'xarray', 'fastapi', 'uvicorn')))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()
