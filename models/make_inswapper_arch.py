"""Models of inswapper_128's and det_10g's architecture with random weights, for timing.

    python models/make_inswapper_arch.py OUT.onnx [--fp16] [--scrfd DET.onnx] [--time]

The builders live in vcamswap.modelstore.arch (the benchmark imports them from there).
"""

from vcamswap.modelstore.arch import main

if __name__ == "__main__":
    main()
