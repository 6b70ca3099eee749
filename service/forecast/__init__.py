"""Forecasting: the day's input tensor in, a checked PM2.5 field out.

``tensor`` builds the model input from the inbox, ``model`` loads the self-describing
artifact (TensorFlow is imported there and only there), ``check`` validates the output before
anything is stored. The run's lifecycle (attempts, storage, fallback) lives in ``service.jobs``;
offline training lives in ``service.training``.
"""
