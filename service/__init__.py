"""pm25-forecast: the service (files -> tensor -> model -> field -> database -> HTTP)."""

__version__ = "0.1.0"
