"""Errors raised while reading input files: each names the file and says what is wrong.

Every reader turns library failures into one of these, so a user never sees a traceback
from inside netCDF4 or pyproj. All derive from :class:`InputFileError`, which the pipeline
catches to record a clear failure message for the run.

========================  ==========================================================
exception                 raised when
========================  ==========================================================
MissingInputError         no file matches a path template, or a path does not exist
NotNetCDFError            the file is empty, truncated, or not netCDF at all
MissingVariableError      a required variable or attribute is absent
GridMismatchError         wrong projection, or a grid that does not align
DomainCoverageError       a WRF domain that does not cover the service grid
TimeCoverageError         hours missing or duplicated, or the wrong dates
BadValueError             NaN or I/O API BADVAL values
NegativeValueError        negative concentrations
ImplausibleValueError     values outside the feature's plausible range
UnitError                 units that are unknown or wrong for the variable
PM10BelowPM25Warning      a warning, not an error: PM10 < PM2.5 somewhere
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


class MissingVariableError(InputFileError):
    """A required variable, dimension or global attribute is absent."""


class GridMismatchError(InputFileError):
    """The file's projection or grid does not match or align with the service grid."""


class DomainCoverageError(InputFileError):
    """The file's domain does not cover the whole service grid."""


class TimeCoverageError(InputFileError):
    """Hours are missing or duplicated, or the file holds the wrong dates."""


class BadValueError(InputFileError):
    """NaN or I/O API missing values (BADVAL3) where data is required."""


class ImplausibleValueError(InputFileError):
    """Values outside the plausible physical range of the variable."""


class NegativeValueError(ImplausibleValueError):
    """A concentration below zero."""


class UnitError(InputFileError):
    """Units that are unknown or not convertible to the canonical unit."""


class PM10BelowPM25Warning(UserWarning):
    """PM10 is below PM2.5 in some cells: physically inconsistent, but usable."""
