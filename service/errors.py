"""Errors raised while reading input files: each names the file and says what is wrong.

Every reader turns library failures into one of these, so a user never sees a traceback
from inside netCDF4 or pyproj. All derive from :class:`InputFileError`, which the pipeline
catches to record a clear failure message for the run.

========================  ==========================================================
exception                 raised when
========================  ==========================================================
MissingInputError         no file matches a path template, a path does not exist, or a
                          symbolic link points nowhere
NotNetCDFError            the file is empty, truncated, a directory, a symbolic link loop, or
                          not netCDF at all
UnreadableInputError      a file or folder that exists but cannot be read (permissions)
DimensionError            a dimension larger than any real file has, one that disagrees with
                          the header, or a variable with the wrong dimensions
MissingVariableError      a required variable or attribute is absent
GridMismatchError         wrong projection, or a grid that does not align
DomainCoverageError       a grid or WRF domain that does not cover the service grid
TimeCoverageError         hours missing or duplicated, or the wrong dates
ConflictingInputError     two files hold the same hour with different values
BadValueError             NaN, infinite or I/O API BADVAL3 values
NegativeValueError        negative concentrations
ImplausibleValueError     values outside the feature's plausible range
WrongUnitsError           implausible values that would be plausible in another unit
UnitError                 units that are unknown or wrong for the variable
PM10BelowPM25Error        PM10 below PM2.5 in most cell-hours (swapped variables?)
========================  ==========================================================
"""

from __future__ import annotations

from pathlib import Path


class InputFileError(Exception):
    """An input file (or set of files) cannot be used; the message names it and the problem.

    Parameters
    ----------
    path
        The offending file, or a description of a set of files.
    problem
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable, so that errors raised in worker processes reach the parent intact.
        return (type(self), (self.path, self.problem))


class MissingInputError(InputFileError):
    """No file matches a path template, or a given path does not exist."""


class NotNetCDFError(InputFileError):
    """The file is empty, truncated or not a netCDF file."""


class UnreadableInputError(InputFileError):
    """A file or folder exists but cannot be read (permission denied): waiting will not help."""


class DimensionError(InputFileError):
    """A dimension too large for any real file, inconsistent with the header, or misplaced.

    Raised before any data is read, so that a corrupt header declaring millions of steps
    fails at once instead of exhausting memory.
    """


class MissingVariableError(InputFileError):
    """A required variable, dimension or global attribute is absent."""


class GridMismatchError(InputFileError):
    """The file's projection or grid does not match or align with the service grid."""


class DomainCoverageError(GridMismatchError):
    """The file's domain (or grid) does not cover the whole service grid."""


class TimeCoverageError(InputFileError):
    """Hours are missing or duplicated, or the file holds the wrong dates."""


class ConflictingInputError(InputFileError):
    """Two files hold the same hour with different values: which one is right is unknown."""


class BadValueError(InputFileError):
    """NaN, infinite or I/O API missing values (BADVAL3) where data is required."""


class ImplausibleValueError(InputFileError):
    """Values outside the plausible physical range of the variable."""


class NegativeValueError(ImplausibleValueError):
    """A concentration below zero."""


class WrongUnitsError(ImplausibleValueError):
    """Values implausible in their declared units that would be plausible in another unit."""


class UnitError(InputFileError):
    """Units that are unknown or not convertible to the canonical unit."""


class PM10BelowPM25Error(ImplausibleValueError):
    """PM10 is below PM2.5 in most cell-hours: PM10 includes PM2.5, so the variables are
    swapped or one is wrong. A few such cells are only logged (models round and mix)."""
