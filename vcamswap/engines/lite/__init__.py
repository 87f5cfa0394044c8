"""The embedded lite engine: a FaceMesh-driven mesh warp."""
