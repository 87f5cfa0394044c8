"""`vcamswap serve`: the neural swap on Triton Inference Server (PyTriton), for `--engine remote` clients,
and `--export-repo` for the stock Triton container."""
