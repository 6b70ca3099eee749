"""Forecasting: input tensors from the inbox, and (later) the model runner."""
