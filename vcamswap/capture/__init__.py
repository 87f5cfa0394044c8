"""Capture: camera and file sources (newest frame wins), the demo clip."""
