"""Opening netCDF files with clear errors, and writing them atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import netCDF4
import numpy as np
import numpy.typing as npt

from service.errors import MissingInputError, MissingVariableError, NotNetCDFError

_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")


def open_dataset(path: str | Path) -> netCDF4.Dataset:
    """Open a netCDF file for reading, or raise an error that names the file and the problem.

    Parameters
    ----------
    path
        The file to open.

    Raises
    ------
    MissingInputError
        The path does not exist.
    NotNetCDFError
        The file is empty, not netCDF (checked by its magic number), or cannot be opened.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(p, "file does not exist")
    size = p.stat().st_size
    if size == 0:
        raise NotNetCDFError(p, "file is empty (0 bytes)")
    with p.open("rb") as fh:
        head = fh.read(8)
    if not any(head.startswith(m) for m in _MAGIC):
        raise NotNetCDFError(
            p, f"not a netCDF file (starts with {head[:4]!r}, expected 'CDF' or HDF5 signature)"
        )
    try:
        return netCDF4.Dataset(p, "r")
    except OSError as exc:
        raise NotNetCDFError(p, f"cannot be opened as netCDF, probably truncated ({exc})") from None


def read_variable(
    ds: netCDF4.Dataset, path: str | Path, name: str, index: tuple[object, ...] | None = None
) -> npt.NDArray[np.float32]:
    """Read (a slice of) a variable as a plain array, mapping library failures to clear errors.

    Automatic masking and scaling are switched off: missing-value handling is the caller's
    job, because I/O API files mark missing data with BADVAL3 rather than ``_FillValue``.
    """
    if name not in ds.variables:
        raise MissingVariableError(path, f"variable {name!r} is missing")
    var = ds.variables[name]
    var.set_auto_maskandscale(False)
    try:
        data = var[index] if index is not None else var[...]
    except (RuntimeError, OSError, IndexError, ValueError) as exc:
        raise NotNetCDFError(
            path, f"variable {name!r} cannot be read, the file is probably truncated ({exc})"
        ) from None
    return np.asarray(data)


def check_complete(ds: netCDF4.Dataset, path: str | Path) -> None:
    """Raise :class:`NotNetCDFError` if a classic-format file is shorter than its header says.

    netCDF-3 readers happily return zeros for records beyond the end of a truncated file,
    so the expected size is computed from the header and compared with the size on disk.
    """
    if not ds.data_model.startswith("NETCDF3"):
        return
    p = Path(path)
    expected = _classic_expected_size(ds)
    actual = p.stat().st_size
    if expected is not None and actual < expected:
        raise NotNetCDFError(
            p, f"file is truncated: {actual} bytes on disk, the header describes {expected}"
        )


def _classic_expected_size(ds: netCDF4.Dataset) -> int | None:
    """Lower bound of a classic file's size from its variables' shapes (header excluded)."""
    nrec = 0
    rec_size = 0
    fixed = 0
    for var in ds.variables.values():
        dims = var.dimensions
        itemsize = var.dtype.itemsize if var.dtype != str else 1
        n = int(
            np.prod([len(ds.dimensions[d]) for d in dims if not ds.dimensions[d].isunlimited()])
        )
        if dims and ds.dimensions[dims[0]].isunlimited():
            nrec = len(ds.dimensions[dims[0]])
            rec_size += n * itemsize
        else:
            fixed += n * itemsize
    return fixed + nrec * rec_size


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    Readers polling an inbox therefore never see a half-written file under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.replace(target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
