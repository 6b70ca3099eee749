"""The twin: a synthetic world that writes CMAQ, WRF and analysis files in the real formats.

Everything it writes is synthetic and says so in the files' descriptions.
"""
