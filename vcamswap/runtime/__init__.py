"""onnxruntime for every model of the product: execution providers, sessions, the GPU's options and caches."""
