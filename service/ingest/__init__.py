"""Readers: CMAQ, WRF and analysis files -> canonical fields on the service grid.

Readers know the file formats and the vocabulary; they know nothing of storage or models.
"""

from service.ingest.analysis import read_analysis
from service.ingest.cmaq import read_cmaq
from service.ingest.common import FileRecord, SourceFields, forecast_hours
from service.ingest.wrf import read_wrf

__all__ = ["FileRecord", "SourceFields", "forecast_hours", "read_analysis", "read_cmaq", "read_wrf"]
