"""Small stand-in ONNX models with the exact interfaces of the neural engine's real models.

    python models/make_standins.py OUT_DIR [--blob-detector]

The builders live in vcamswap.modelstore (standins*.py; tests and the benchmark import them from there);
standin_set writes the whole set.
"""

from vcamswap.modelstore.standin_set import main

if __name__ == "__main__":
    main()
