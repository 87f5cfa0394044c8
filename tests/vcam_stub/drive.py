"""Runs output sinks in a child process, so the v4l2 stand-in can be preloaded (LD_PRELOAD) into it.

usage: drive.py vcam FRAMES.npy [--device DEV] [--fps F]
       drive.py sinkset FRAMES.npy FILE.avi [--fps F]
       drive.py vanish FRAMES.npy FILE.avi [--fps F]   (the device vanishes for frames 4-5, then returns)

Prints one JSON object on stdout with what happened.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from vcamswap.outputs.base import OutputUnavailable
from vcamswap.outputs.file import FileSink
from vcamswap.outputs.sinkset import SinkSet
from vcamswap.outputs.vcam import VirtualCamSink


def run_vcam(frames: np.ndarray, device: str | None, fps: float) -> dict[str, object]:
    sink = VirtualCamSink(device=device)
    h, w = frames.shape[1:3]
    try:
        sink.open(w, h, fps)
    except OutputUnavailable as e:
        return {"unavailable": str(e), "detail": e.detail}
    try:
        for frame in frames:
            sink.send(frame)
    finally:
        sink.close()
    return {"backend": sink.backend_name, "device": sink.device, "sent": sink.frames_sent}


def run_sinkset(frames: np.ndarray, path: str, fps: float) -> dict[str, object]:
    vcam, file = VirtualCamSink(), FileSink(path)
    h, w = frames.shape[1:3]
    with SinkSet([vcam, file]) as sinks:
        sinks.open(w, h, fps)
        for frame in frames:
            sinks.send(frame)
        states = [s._asdict() for s in sinks.states()]
        live = sinks.live
    return {"states": states, "live": live, "file_frames": file.frames_written}


def run_vanish(frames: np.ndarray, path: str, fps: float) -> dict[str, object]:
    vcam, file = VirtualCamSink(device_check_interval_s=0), FileSink(path)
    h, w = frames.shape[1:3]
    live = []
    with SinkSet([vcam, file], retry_interval_s=0) as sinks:
        sinks.open(w, h, fps)
        marker = Path(os.environ["VCAM_STUB_DIR"]) / f"{Path(str(vcam.device)).name}.gone"
        for i, frame in enumerate(frames):
            if i == 4:
                marker.touch()
            if i == 6:
                marker.unlink()
            sinks.send(frame)
            live.append(sinks.live)
    return {"live": live, "file_frames": file.frames_written, "device": vcam.device}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["vcam", "sinkset", "vanish"])
    ap.add_argument("frames")
    ap.add_argument("file", nargs="?")
    ap.add_argument("--device")
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    frames = np.load(args.frames)
    if args.mode == "vcam":
        result = run_vcam(frames, args.device, args.fps)
    elif args.mode == "sinkset":
        result = run_sinkset(frames, args.file, args.fps)
    else:
        result = run_vanish(frames, args.file, args.fps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
