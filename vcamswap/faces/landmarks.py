"""The one set of landmark tables: FaceMesh's 468-point index groups and the ArcFace 5-point template.

Pure data, no imports beyond numpy: the landmarker, the tracker's smoothing and every engine share them.
"""

from __future__ import annotations

import numpy as np

# insightface's ArcFace 5-point template for a 112 px crop, in types.Detection.kps order (eyes, nose,
# mouth corners). Engines scale and shift it into their own crops.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)

# From mediapipe's face_mesh_connections, chained into ordered polygons.
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_EYEBROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_EYEBROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip

NOSE_TIP = 1
MOUTH_CORNER_RIGHT = 61  # subject's right: the image's left
MOUTH_CORNER_LEFT = 291
EYE_OUTER_RIGHT = 33  # the eye axis that sets the ROI's rotation, as in mediapipe
EYE_OUTER_LEFT = 263
