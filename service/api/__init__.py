"""The HTTP API (FastAPI): forecasts from the database, never from TensorFlow."""
