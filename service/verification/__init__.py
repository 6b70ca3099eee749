"""Verification: published forecasts scored against the analysis, beside raw CMAQ and persistence.

``scores`` holds the pure array functions (the paper's metrics and the Korean grades);
``job`` wires them to the database and the inbox for one date; ``report`` writes the
markdown report. Nothing here runs the model.
"""
