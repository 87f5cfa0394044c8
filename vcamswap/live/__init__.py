"""Live: one frame's pipeline, the loop around it (stats, adaptive quality, sources), and the build that wires them."""
