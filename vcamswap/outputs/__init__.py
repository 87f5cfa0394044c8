"""Outputs: the sink contract, SinkSet, virtual camera, MJPEG, preview window, file."""
