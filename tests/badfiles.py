"""Builders of broken input files for the bad-input tests: copies with one thing wrong.

Each builder starts from a good file of a sample day and writes a variant that is wrong in
one way (a dimension, a variable's layout, a header attribute, values, units), so that a
test can check that the reader names exactly that problem.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np


@contextlib.contextmanager
def edit(path: Path) -> Iterator[netCDF4.Dataset]:
    """Open ``path`` for editing in place, after giving it its own copy of the bytes.

    Test inboxes are hard-linked copies of one good inbox; writing through a link would
    change the original, so the link is broken first.
    """
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    ds = netCDF4.Dataset(path, "a")
    try:
        yield ds
    finally:
        ds.close()


def replace(path: Path, new: Path) -> None:
    """Put ``new`` where ``path`` was (breaking any hard link)."""
    path.unlink()
    shutil.move(new, path)


def copy_netcdf(
    src: Path,
    dst: Path,
    *,
    fmt: str | None = None,
    skip: tuple[str, ...] = (),
    dims: Mapping[str, int | None] | None = None,
    variables: Mapping[str, tuple[tuple[str, ...], Any, np.ndarray, dict[str, Any]]] | None = None,
    chunks: Mapping[str, tuple[int, ...]] | None = None,
) -> Path:
    """Copy a netCDF file, changing what is asked.

    Parameters
    ----------
    fmt
        Format of the copy (default: the source's).
    skip
        Variables to leave out.
    dims
        Dimension lengths to change or add (``None`` makes a dimension unlimited).
    variables
        Variables to replace or add: name -> (dimensions, dtype, data, attributes).
    chunks
        netCDF-4 chunk shapes per variable (default: one record per chunk).
    """
    dims = dict(dims or {})
    variables = dict(variables or {})
    with netCDF4.Dataset(src) as a:
        fmt = fmt or a.data_model
        with netCDF4.Dataset(dst, "w", format=fmt) as b:
            b.setncatts({k: a.getncattr(k) for k in a.ncattrs()})
            for name, d in a.dimensions.items():
                b.createDimension(name, dims.pop(name, None if d.isunlimited() else len(d)))
            for name, size in dims.items():
                b.createDimension(name, size)
            for name, v in a.variables.items():
                if name in skip or name in variables:
                    continue
                v.set_auto_maskandscale(False)
                if v.dtype == np.dtype("S1"):
                    v.set_auto_chartostring(False)
                data = np.asarray(v[...])
                variables[name] = (
                    v.dimensions,
                    v.dtype,
                    data,
                    {k: v.getncattr(k) for k in v.ncattrs()},
                )
            for name, (vdims, dtype, data, attrs) in variables.items():
                kw: dict[str, Any] = {}
                if fmt.startswith("NETCDF4") and data.ndim >= 1 and data.size:
                    kw["chunksizes"] = (chunks or {}).get(name) or (1, *data.shape[1:])
                w = b.createVariable(name, dtype, vdims, **kw)
                w.setncatts(attrs)
                w.set_auto_maskandscale(False)
                if np.dtype(dtype) == np.dtype("S1"):
                    w.set_auto_chartostring(False)
                if data.size:
                    w[tuple(slice(0, n) for n in data.shape)] = data
    return dst


def with_huge_dimension(src: Path, dst: Path, dim: str, length: int) -> Path:
    """A netCDF-4 copy of ``src`` whose dimension ``dim`` declares ``length`` entries.

    The data stay where they were; only one record far out is written (or the fixed
    dimension is declared long), so the file stays small: chunks never written take no
    space, which is how a 3 MB file can claim fifty million steps.
    """
    with netCDF4.Dataset(src) as a:
        unlimited = a.dimensions[dim].isunlimited()
        first = {n: v.dimensions for n, v in a.variables.items()}
    if not unlimited:
        return copy_netcdf(src, dst, fmt="NETCDF4", dims={dim: length})
    copy_netcdf(src, dst, fmt="NETCDF4")
    with netCDF4.Dataset(dst, "a") as ds:
        name = next(n for n, d in first.items() if d and d[0] == dim)
        var = ds.variables[name]
        var.set_auto_maskandscale(False)
        if var.dtype == np.dtype("S1"):
            var.set_auto_chartostring(False)
        var[length - 1] = np.zeros(var.shape[1:], var.dtype)
    return dst


def text_file(path: Path, text: str = "<html><body>404 Not Found</body></html>\n") -> Path:
    path.write_text(text)
    return path


def hdf5_garbage(path: Path, size: int = 4096) -> Path:
    """The HDF5 signature followed by noise: passes a magic-number check, nothing else."""
    rng = np.random.default_rng(0)
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + rng.integers(0, 256, size, np.uint8).tobytes())
    return path


def truncated(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
