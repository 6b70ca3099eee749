"""Readers: CMAQ, WRF and analysis files -> canonical fields on the service grid.

Readers know the file formats and the vocabulary; they know nothing of storage or models.
"""

from service.ingest.analysis import read_analysis
from service.ingest.cmaq import read_cmaq
from service.ingest.common import FileRecord, SourceFields
from service.ingest.wrf import read_wrf
from service.timeaxis import forecast_hours

__all__ = ["FileRecord", "SourceFields", "forecast_hours", "read_analysis", "read_cmaq", "read_wrf"]
