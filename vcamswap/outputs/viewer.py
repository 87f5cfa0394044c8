"""The daemon's preview window, in a process of its own: `python -m vcamswap.outputs.viewer URL`.

It shows the daemon's local MJPEG stream in an OpenCV window. A separate process because OpenCV's bundled
Qt cannot share a process with the GTK tray icon (their xkbcommon libraries clash and the process dies),
and so that a window problem can never take the daemon down. It ends when the window is closed (or Esc/q)
or when the stream ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

WINDOW = "Swap Cam preview"
URL_ENV = "VCAMSWAP_PREVIEW_URL"  # the stream's URL with its token: not on the command line, which anyone sees


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args and os.environ.get(URL_ENV):
        args = [os.environ[URL_ENV]]
    if len(args) != 1:
        print(f"usage: python -m vcamswap.outputs.viewer URL (or ${URL_ENV})", file=sys.stderr)
        return 2
    import cv2

    cap = cv2.VideoCapture(args[0])
    if not cap.isOpened():
        print(f"vcamswap: preview: cannot read {args[0].split('?', 1)[0]}", file=sys.stderr)
        return 1
    try:
        # Resizable, aspect kept, and without Qt's toolbar and status bar around the picture.
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        sized = False
        shown = False
        while True:
            ok, frame = cap.read()
            if not ok:
                return 0  # the daemon stopped the stream
            if not sized:
                cv2.resizeWindow(WINDOW, frame.shape[1], frame.shape[0])
                sized = True
            cv2.imshow(WINDOW, frame)
            key = cv2.waitKey(1)
            if not shown:  # tells the sink the window is up (stdout is a pipe to it, or nothing)
                for _ in range(10):  # let the window map and paint the first frame before saying so
                    key = max(key, cv2.waitKey(20))
                shown = True
                print("shown", flush=True)
            if key in (27, ord("q")):
                return 0
            if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                return 0  # closed by the user
    except cv2.error as e:
        print(f"vcamswap: preview: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    finally:
        cap.release()


if __name__ == "__main__":
    raise SystemExit(main())
