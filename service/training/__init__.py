"""Offline training and scoring: archive -> dataset -> trained artifact -> scores.

Modellers use this room (``pm25 train``, ``pm25 evaluate``); the daily run never imports it. It
reads archives with the same readers and tensor builder as the operational pipeline, so
training and serving cannot drift apart.
"""
