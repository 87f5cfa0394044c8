"""The `remote` engine: the laptop keeps capture, tracking, alignment and paste-back; only the 128x128 swap
crosses the network, to Triton Inference Server (`vcamswap serve` or an exported model repository)."""
