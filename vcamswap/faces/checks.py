"""`vcamswap doctor` lines for the source faces: is each photo in the folder usable."""

from __future__ import annotations

from collections.abc import Iterable

from vcamswap.checks import Context, Line


def check_faces(ctx: Context) -> Iterable[Line]:
    # cv2 and the face models (onnxruntime) load for this check only
    from vcamswap.faces.library import list_faces

    folder = ctx.settings.faces_dir()
    entries = list_faces(folder)
    if not entries:
        yield Line(False, "faces", f"no face photos in {folder}", "vcamswap faces add PHOTO.jpg")
        return
    from vcamswap.faces.analyzer import FaceAnalyzer
    from vcamswap.faces.detector import BlazeFaceDetector
    from vcamswap.faces.landmarker import FaceMesh
    from vcamswap.faces.library import FaceLibrary

    library = FaceLibrary(folder, FaceAnalyzer(BlazeFaceDetector(), FaceMesh()))
    problems = library.check_all()
    usable = len(entries) - len(problems)
    yield Line(usable > 0, "faces", f"{usable} of {len(entries)} usable in {folder}", "vcamswap faces add PHOTO.jpg")
    for name, why in sorted(problems.items()):
        yield Line(False, f"face {name}", why,
                   f"use a sharp, frontal photo of one face, or 'vcamswap faces remove {name}'")
