"""File conventions: the Models-3 I/O API and WRF ``wrfout`` layouts, read and written.

These modules know the formats, not the service's vocabulary: :mod:`service.ingest` maps
what they read onto the service grid and features; the twin writes its files through them.
"""
