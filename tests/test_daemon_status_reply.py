"""The status reply is read while the daemon's threads write its state: one reply never says two things."""

from __future__ import annotations

import threading

from vcamswap.controls import Controls
from vcamswap.daemon.state import DaemonState
from vcamswap.daemon.status import status
from vcamswap.settings import Settings


def test_camera_and_state_agree_while_the_camera_is_being_waited_for() -> None:
    """The capture thread sets the missing camera's error between the reply's reads of it: both parts of the
    reply must come from one read ('starting' beside a camera shown as waiting was a real reply)."""
    st = DaemonState(settings=Settings(), controls=Controls())
    done = threading.Event()

    def flip() -> None:  # what the capture thread does at each retry, as fast as it can
        while not done.is_set():
            st.health.waiting_for_camera = None if st.health.waiting_for_camera else "no camera at /dev/video7"

    writer = threading.Thread(target=flip, daemon=True)
    writer.start()
    seen = {"waiting": 0, "opening": 0}
    try:
        for _ in range(20000):
            r = status(st)
            cam = r["camera"]["status"]
            seen[cam] += 1
            assert (cam == "waiting") == (r["state"] == "error"), r
    finally:
        done.set()
        writer.join()
    assert seen["waiting"] and seen["opening"]  # both sides were read, so the check above saw the race
