"""The lite engine's triangle mesh: Delaunay triangles of the FaceMesh points, one piecewise-affine map
(target triangle -> source triangle) for the whole crop applied with a single cv2.remap, and how far each
pixel of the warp can be trusted."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from vcamswap.compose.align import Box


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles of the mesh points, as index triples."""
    pts = np.asarray(points, np.float32)
    lo, hi = pts.min(0) - 1.0, pts.max(0) + 1.0
    subdiv = cv2.Subdiv2D((float(lo[0]), float(lo[1]), float(hi[0] - lo[0] + 1), float(hi[1] - lo[1] + 1)))
    subdiv.insert([(float(x), float(y)) for x, y in pts])
    tris = np.asarray(subdiv.getTriangleList(), np.float32).reshape(-1, 3, 2)
    # Map vertex coordinates back to indices (Subdiv2D returns coordinates, not indices).
    d = np.linalg.norm(tris[:, :, None, :] - pts[None, None, :, :], axis=-1)
    idx = d.argmin(-1)
    ok = (d.min(-1) < 1e-3).all(1) & (idx[:, 0] != idx[:, 1]) & (idx[:, 1] != idx[:, 2]) & (idx[:, 0] != idx[:, 2])
    return idx[ok].astype(np.int32)


def triangle_affines(dst: np.ndarray, src: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(T, 2, 3) affines mapping each destination triangle onto its source triangle (all zero for a
    degenerate one). Closed form on the triangles' edge vectors: a batched 3x3 solve costs four times more."""
    d = dst[tris].astype(np.float64)  # (T, 3, 2)
    s = src[tris].astype(np.float64)
    o = d[:, 0]  # (T, 2) the first corner
    u, v = d[:, 1] - o, d[:, 2] - o  # the destination edges from it
    su, sv = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]  # the same edges in the source
    det = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    good = np.abs(det) > 1e-6
    inv = np.where(good, 1.0 / np.where(good, det, 1.0), 0.0)[:, None]
    a = np.empty((len(tris), 2, 3), np.float64)
    # The linear part L solves L @ [u v] = [su sv]: L = [su sv] @ inverse([u v]).
    a[:, :, 0] = (su * v[:, 1:2] - sv * u[:, 1:2]) * inv
    a[:, :, 1] = (sv * u[:, 0:1] - su * v[:, 0:1]) * inv
    a[:, :, 2] = (s[:, 0] - a[:, :, 0] * o[:, 0:1] - a[:, :, 1] * o[:, 1:2]) * (inv != 0)
    return a.astype(np.float32)


def mesh_box(points: np.ndarray, size: int, margin: int) -> Box:
    """The points' bounding box grown by `margin` pixels, within the crop (the whole crop if that is empty)."""
    lo = np.floor(points.min(0)).astype(int) - margin
    hi = np.ceil(points.max(0)).astype(int) + margin + 1
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), size), min(int(hi[1]), size)
    return Box(x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else Box(0, 0, size, size)


def rasterize_indices(dst: np.ndarray, tris: np.ndarray, size: int, box: Box | None = None) -> np.ndarray:
    """An int32 map of which triangle covers each pixel (-1 = none); a later triangle wins a shared edge.
    With `box`, the map of that box only (the triangles must lie inside it or cross only the crop's edge)."""
    box = box or Box(0, 0, size, size)
    index = np.full(box.shape, -1, np.int32)
    polys = np.round(dst[tris] * 16).astype(np.int32)  # 4 fractional bits: sub-pixel edges
    polys -= box.offset
    polys = list(polys)
    fill, line = cv2.fillConvexPoly, cv2.LINE_8  # once per triangle: no lookups or keywords in the loop
    for i in range(len(polys)):
        fill(index, polys[i], i, line, 4)
    return index


@lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def mesh_maps(index: np.ndarray, affines: np.ndarray, box: Box, size: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap's maps for `box` of a crop of `size` (`index` is rasterize_indices in it): per pixel, where its
    triangle's affine takes it in the texture. A sub-box's maps are slices of these, so two textures warped by
    one mesh (the likeness's photo beside the skin) share them."""
    xs, ys = _pixel_grid(size)
    xs, ys = xs[box.region], ys[box.region]
    # One plane per affine coefficient, looked up per pixel; the extra last entry (all 0) is what index -1
    # picks: an uncovered pixel maps to (0, 0), the texture's first pixel, and the remap stays on its fast path.
    table = np.zeros((6, len(affines) + 1), np.float32)
    table[:, :-1] = affines.reshape(-1, 6).T
    c = [np.take(row, index) for row in table]
    map_x = c[0] * xs
    map_x += c[1] * ys
    map_x += c[2]
    map_y = c[3] * xs
    map_y += c[4] * ys
    map_y += c[5]
    return map_x, map_y


def mesh_warp(
    texture: np.ndarray,
    src_pts: np.ndarray,
    dst_pts: np.ndarray,
    tris: np.ndarray,
    index: np.ndarray | None = None,
    affines: np.ndarray | None = None,
    box: Box | None = None,
    maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Warp `texture` so its src_pts land on dst_pts; `index` (rasterize_indices of dst_pts, in `box` when
    given) and `affines` (triangle_affines(dst_pts, src_pts, tris)) may be passed in when the caller has them
    already, or `maps` (mesh_maps in `box`). Only `box` is remapped: every pixel no triangle covers shows the
    texture's first pixel."""
    size = texture.shape[0]
    box = box or Box(0, 0, size, size)
    if maps is None:
        if affines is None:
            affines = triangle_affines(dst_pts, src_pts, tris)
        if index is None:
            index = rasterize_indices(dst_pts, tris, size, box)
        maps = mesh_maps(index, affines, box, size)
    warped = cv2.remap(texture, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return box.paste(warped, size, texture[0, 0].tolist())


# A cheek turned toward the camera is filled from a thin strip at the edge of a frontal source photo:
# beyond this magnification the stretched strip shows as streaks, so the camera's own skin is kept there.
MAX_STRETCH = 2.5


def texture_trust(index: np.ndarray, affines: np.ndarray, size: int = 0) -> np.ndarray:
    """Per pixel, how much of the source texture to show: 0 where no triangle covers the pixel (the mesh
    folds at a turned cheek) or where its triangle magnifies the source past MAX_STRETCH. `size`: the crop's,
    when `index` is a box of it."""
    det = np.abs(affines[:, 0, 0] * affines[:, 1, 1] - affines[:, 0, 1] * affines[:, 1, 0])
    stretch = 1.0 / np.sqrt(np.maximum(det, 1e-6))  # linear magnification source -> crop
    tri_trust = np.zeros(len(affines) + 1, np.float32)  # the last entry, 0, is what index -1 picks
    tri_trust[:-1] = np.clip((MAX_STRETCH + 1.0 - stretch) / 1.0, 0.0, 1.0)
    trust = tri_trust[index]
    full = size or index.shape[0]
    # Where a photo's far side is squeezed (a turned head in the photo), trusted and over-stretched slivers
    # alternate across the camera's cheek: kept as they are, they show as horizontal streaks of the photo and the
    # camera. Trust narrower than the erosion goes, so such a band is the camera's as a whole.
    r = int(full * TRUST_ERODE)
    trust = trust if r < 1 else cv2.erode(trust, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    k = trust_blur(size) if size else max(3, (index.shape[0] // 40) | 1)
    return cv2.GaussianBlur(trust, (k, k), 0)


TRUST_ERODE = 1 / 64  # of the crop: the narrowest band of trusted triangles kept (texture_trust)


def trust_blur(size: int) -> int:
    """The trust's blur kernel at a crop size."""
    return max(3, (size // 40) | 1)
