"""Opening netCDF files with clear errors, bounding what they make us read, atomic writes.

A file's header is a promise the reader cannot take on trust: netCDF-4 lets a 3 MB file
declare fifty million time steps. Readers therefore check declared dimensions
(:func:`check_dimensions`), the layout of each variable (:func:`check_variable`) and the size
of its compressed chunks before reading data, and read only the slices they need.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import netCDF4
import numpy as np
import numpy.typing as npt

from service.errors import DimensionError, MissingInputError, MissingVariableError, NotNetCDFError

_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")

#: The most one chunk of a netCDF-4 variable may hold once decompressed. A reader must
#: inflate a whole chunk to read one value of it; real CMAQ and WRF files chunk by record
#: (a few MB), so 128 MiB is generous and keeps any one read well under the memory budget.
MAX_CHUNK_BYTES = 128 * 2**20


def require_file(path: str | Path) -> Path:
    """Return ``path`` if it is a regular file (or a link to one); otherwise say what it is.

    Raises
    ------
    MissingInputError
        Nothing there, or a symbolic link whose target does not exist (yet).
    NotNetCDFError
        A directory, a device, pipe or socket, or a symbolic link loop.
    """
    p = Path(path)
    try:
        p.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotNetCDFError(
                p, f"is a symbolic link loop ({p} -> {p.readlink()} never reaches a file)"
            ) from None
    if p.is_symlink() and not p.exists():
        raise MissingInputError(
            p, f"is a symbolic link to {p.readlink()}, which does not exist (a dangling link)"
        )
    if p.is_dir():
        raise NotNetCDFError(p, "is a directory, not a netCDF file")
    if not p.exists():
        raise MissingInputError(p, "file does not exist")
    if not p.is_file():
        raise NotNetCDFError(p, "is not a regular file (a device, pipe or socket?)")
    return p


def open_dataset(path: str | Path) -> netCDF4.Dataset:
    """Open a netCDF file for reading, or raise an error that names the file and the problem.

    Parameters
    ----------
    path
        The file to open.

    Raises
    ------
    MissingInputError
        The path does not exist, or is a dangling symbolic link.
    NotNetCDFError
        A directory; the file is empty, not netCDF (checked by its magic number), or cannot
        be opened.
    """
    p = require_file(path)
    size = p.stat().st_size
    if size == 0:
        raise NotNetCDFError(p, "file is empty (0 bytes)")
    try:
        with p.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise NotNetCDFError(p, f"cannot be read ({exc.strerror or exc})") from None
    if not any(head.startswith(m) for m in _MAGIC):
        raise NotNetCDFError(
            p, f"not a netCDF file (starts with {head[:4]!r}, expected 'CDF' or HDF5 signature)"
        )
    try:
        return netCDF4.Dataset(p, "r")
    except (OSError, RuntimeError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise NotNetCDFError(
            p, f"cannot be opened as netCDF, probably truncated or corrupt ({why})"
        ) from None


def check_dimensions(
    ds: netCDF4.Dataset, path: str | Path, limits: Mapping[str, tuple[int, str]]
) -> dict[str, int]:
    """Check declared dimension lengths against limits before any data is read.

    Parameters
    ----------
    ds, path
        The open file and its name for messages.
    limits
        Dimension name -> (largest length any real file has, why), for the dimensions the
        reader will index; dimensions the file lacks are left to the caller.

    Returns
    -------
    dict
        The length of every dimension of the file.

    Raises
    ------
    DimensionError
        A dimension longer than its limit: a corrupt header, never a real file.
    """
    sizes = {name: len(dim) for name, dim in ds.dimensions.items()}
    for name, (limit, why) in limits.items():
        n = sizes.get(name)
        if n is not None and n > limit:
            raise DimensionError(
                path,
                f"dimension {name!r} declares {n:,} entries, more than any real file holds "
                f"(at most {limit:,}: {why}); the header is corrupt, nothing was read",
            )
    return sizes


def check_variable(
    ds: netCDF4.Dataset, path: str | Path, name: str, dims: Sequence[str], *, numeric: bool = True
) -> netCDF4.Variable:
    """Return variable ``name`` after checking its dimensions, type and chunk size.

    Raises
    ------
    MissingVariableError
        No such variable.
    DimensionError
        Other dimensions (or another order) than ``dims``, or a chunk too large to inflate.
    NotNetCDFError
        A non-numeric variable where numbers are expected.
    """
    if name not in ds.variables:
        raise MissingVariableError(path, f"variable {name!r} is missing")
    var = ds.variables[name]
    if tuple(var.dimensions) != tuple(dims):
        raise DimensionError(
            path,
            f"variable {name!r} has dimensions ({', '.join(var.dimensions)}), "
            f"expected ({', '.join(dims)})",
        )
    if numeric and (var.dtype is str or var.dtype.kind not in "fiu"):
        raise NotNetCDFError(path, f"variable {name!r} holds {var.dtype}, not numbers")
    if ds.data_model.startswith("NETCDF4"):
        # No chunk cache: readers read each chunk once, and the library's default cache
        # (tens of MB per variable, kept while the file is open) would add up over the
        # variables and files of a day to more than the data read.
        var.set_var_chunk_cache(size=0)
        chunks = var.chunking()
        if isinstance(chunks, list):
            size = int(np.prod(chunks, dtype=np.int64)) * var.dtype.itemsize
            if size > MAX_CHUNK_BYTES:
                raise DimensionError(
                    path,
                    f"variable {name!r} is stored in chunks of {chunks} ({size / 2**20:,.0f} MiB "
                    f"each once inflated, at most {MAX_CHUNK_BYTES // 2**20} MiB are read)",
                )
    return var


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
    except (RuntimeError, OSError, IndexError, ValueError, MemoryError) as exc:
        raise NotNetCDFError(
            path, f"variable {name!r} cannot be read: the file is truncated or corrupt ({exc})"
        ) from None
    return np.asarray(data)


def read_steps(
    ds: netCDF4.Dataset, path: str | Path, name: str, steps: Sequence[int], rest: tuple[object, ...]
) -> npt.NDArray[np.float32]:
    """Read the records ``steps`` (along the first dimension) of a variable, and nothing else.

    Consecutive steps are read as one slice; scattered ones one at a time, so that memory
    follows the number of steps asked for, never the distance between them.
    """
    if not steps:
        raise ValueError("no steps to read")
    s0, s1 = min(steps), max(steps) + 1
    if s1 - s0 == len(steps):
        block = read_variable(ds, path, name, (slice(s0, s1), *rest))
        return block[[s - s0 for s in steps]] if list(steps) != list(range(s0, s1)) else block
    return np.stack([read_variable(ds, path, name, (s, *rest)) for s in steps])


def check_complete(ds: netCDF4.Dataset, path: str | Path) -> None:
    """Raise :class:`NotNetCDFError` if a classic-format file is shorter than its header says.

    netCDF-3 readers happily return zeros for records beyond the end of a truncated file,
    so the exact size is computed from the header (:func:`classic_expected_size`) and a file
    short by even one byte is refused.
    """
    if not ds.data_model.startswith("NETCDF3"):
        return
    p = Path(path)
    nrec = next((len(d) for d in ds.dimensions.values() if d.isunlimited()), 0)
    expected = classic_expected_size(p, nrec)
    actual = p.stat().st_size
    if actual < expected:
        raise NotNetCDFError(p, f"file is truncated ({actual} of {expected} bytes)")


# Tags and type sizes of the classic format (netCDF "File Format Specification").
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 0x0A, 0x0B, 0x0C
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}


class _Header:
    """Sequential big-endian reads of a classic header; a short read means truncation."""

    def __init__(self, fh: BinaryIO, path: Path, version: int) -> None:
        self.fh, self.path = fh, path
        self.size_bytes = 8 if version == 5 else 4  # CDF-5 counts in 64-bit integers
        self.offset_bytes = 4 if version == 1 else 8

    def take(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) < n:
            raise NotNetCDFError(self.path, "file is truncated inside its header")
        return data

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def count(self) -> int:
        return self.uint(self.size_bytes)

    def skip(self, n: int) -> None:
        self.take(n + (-n) % 4)  # padded to 4 bytes

    def tagged_list(self, tag: int) -> int:
        found, n = self.uint(4), self.count()
        if found not in (0, tag):
            raise NotNetCDFError(self.path, f"corrupt header (tag {found:#x}, expected {tag:#x})")
        return n

    def attributes(self) -> None:
        for _ in range(self.tagged_list(_NC_ATTRIBUTE)):
            self.skip(self.count())  # name
            nc_type = self.uint(4)
            self.skip(self.count() * _TYPE_SIZES.get(nc_type, 1))


def classic_expected_size(path: str | Path, nrec: int) -> int:
    """The exact size of a classic (CDF-1, CDF-2 or CDF-5) file, header included.

    The header is parsed for each variable's type, shape and ``begin`` offset; the file must
    reach the end of the last value of the last fixed-size variable and of the last variable
    of record ``nrec - 1``. Padding after the last value is not counted, so a writer that
    omits it is not refused.

    Parameters
    ----------
    path
        The file.
    nrec
        Number of records (the unlimited dimension's length, as the library read it).

    Raises
    ------
    NotNetCDFError
        The header itself is cut short or corrupt.
    """
    p = Path(path)
    with p.open("rb") as fh:
        magic = fh.read(4)
        if magic[:3] != b"CDF" or magic[3] not in (1, 2, 5):
            raise NotNetCDFError(p, f"not a classic netCDF file (starts with {magic!r})")
        h = _Header(fh, p, magic[3])
        h.count()  # numrecs: taken from the library, which handles streaming files
        dims: list[int | None] = []
        for _ in range(h.tagged_list(_NC_DIMENSION)):
            h.skip(h.count())
            n = h.count()
            dims.append(n if n else None)  # length 0 marks the record dimension
        h.attributes()
        shapes: list[tuple[bool, int, int]] = []  # (is a record variable, begin, data bytes)
        for _ in range(h.tagged_list(_NC_VARIABLE)):
            h.skip(h.count())
            ids = [h.count() for _ in range(h.count())]
            h.attributes()
            itemsize = _TYPE_SIZES.get(h.uint(4), 1)
            h.count()  # vsize: padded, and clipped for huge variables; recomputed below
            begin = h.uint(h.offset_bytes)
            lengths = [dims[i] if i < len(dims) else 0 for i in ids]
            record = bool(lengths) and lengths[0] is None
            data = math.prod(n or 1 for n in lengths[1 if record else 0 :]) * itemsize
            shapes.append((record, begin, data))
        end = fh.tell()
    rec_size = sum(d + (-d) % 4 for r, _, d in shapes if r)
    if sum(1 for r, _, _ in shapes if r) == 1:
        rec_size = next(d for r, _, d in shapes if r)  # one record variable: no padding
    ends = [end]
    for record, begin, data in shapes:
        if not record:
            ends.append(begin + data)
        elif nrec:
            ends.append(begin + (nrec - 1) * rec_size + data)
    return max(ends)


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
