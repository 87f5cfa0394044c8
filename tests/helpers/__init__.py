"""Shared test helpers: media paths, frame reading, pipeline building, CLI runs."""
