"""The whole set of stand-in models in one folder, as `python models/make_standins.py OUT_DIR` writes it.

It sits above the stand-in builders (standins, standin_scrfd, standins_ghost), which build on each other's
names: the set is the one place that takes them all. By default the detector finds real faces (the embedded
BlazeFace inside SCRFD's interface), so `vcamswap run --engine inswapper --models OUT_DIR` swaps a real clip;
`--blob-detector` writes the bright-blob detector the exact-geometry tests use.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vcamswap.modelstore.standin_scrfd import scrfd_face_model
from vcamswap.modelstore.standins import make_all, make_optional, save
from vcamswap.modelstore.standins_ghost import make_ghost

USAGE = "usage: python models/make_standins.py OUT_DIR [--blob-detector]"


def make_set(out: Path, blob_detector: bool = False) -> dict[str, Path]:
    """Every stand-in in `out`: the neural engine's, the optional models and GHOST's."""
    made = {**make_all(out), **make_optional(out), **make_ghost(out)}
    if not blob_detector:
        made["det_10g"] = save(scrfd_face_model(), out / "det_10g.onnx")
    return made


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    flags = [a for a in args if a.startswith("-")]
    paths = [a for a in args if not a.startswith("-")]
    if len(paths) != 1 or set(flags) - {"--blob-detector"}:
        sys.exit(USAGE)
    for name, p in make_set(Path(paths[0]), blob_detector=bool(flags)).items():
        print(f"{name}: {p}")


if __name__ == "__main__":
    main()
