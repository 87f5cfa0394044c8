"""Small stand-in ONNX models with the exact interfaces of the neural engine's real models.

    python models/make_standins.py OUT_DIR

The builders live in vcamswap.modelstore.standins (tests and the benchmark import them from there).
"""

from vcamswap.modelstore.standins import main

if __name__ == "__main__":
    main()
