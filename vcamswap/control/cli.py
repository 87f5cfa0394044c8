"""`vcamswap status`, `toggle`, `face`, `preset`, `likeness`, `targets`, `pause`, `resume`, `label`, `occlusion`,
`enhance`, `boost`, `model`, `engine`, `stop`: commands for the daemon."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable

from vcamswap.choices import ENGINE_NAMES, OCCLUSION_KINDS, SWAP_MODELS
from vcamswap.control.client import request
from vcamswap.control.protocol import IpcError, Reply, Request

log = logging.getLogger("vcamswap.ipc")

ENGINE_WAIT_S = 120.0  # how long `vcamswap engine NAME` waits for the engine to take over
POLL_S = 0.25


def _print_summary(reply: Reply) -> None:
    swap = "on" if reply.get("swap") else "off"
    extra = " (paused)" if reply.get("paused") else ""
    faces = "all faces" if reply.get("targets") == "all" else "one face"
    print(f"swap {swap}, face {reply.get('face') or 'none'}, preset {reply.get('preset')}, "
          f"likeness {reply.get('likeness')}, {faces}{extra}",
          flush=True)


def _send(req: Request) -> tuple[Reply | None, int]:
    try:
        reply = request(req)
    except IpcError as e:
        print(f"vcamswap: {e}", file=sys.stderr, flush=True)
        return None, 1
    if not reply.get("ok"):
        print(f"vcamswap: error: {reply.get('error', 'the daemon refused the request')}", file=sys.stderr, flush=True)
        return reply, 2
    return reply, 0


def cmd_status(args: argparse.Namespace) -> int:
    reply, rc = _send({"cmd": "status"})
    if reply is not None and rc == 0:
        print(json.dumps(reply, indent=2, sort_keys=True), flush=True)
    return rc


def _control(cmd: str, arg_name: str | None = None) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        req: Request = {"cmd": cmd}
        if arg_name is not None:
            req["arg"] = getattr(args, arg_name)
        reply, rc = _send(req)
        if reply is not None and rc == 0:
            if cmd == "stop":
                print(f"stopping the daemon (pid {reply.get('pid')})", flush=True)
            elif cmd == "engine":
                return _await_engine(reply)
            elif cmd == "model":
                print(reply.get("note") or f"model {reply.get('model')} in force", flush=True)
            else:
                _print_summary(reply)
        return rc

    return run


def _await_engine(reply: Reply) -> int:
    """`vcamswap engine NAME`: the daemon builds it in the background; say when it is in force, or why not."""
    wanted = reply.get("engine_pending")
    if not wanted:
        print(f"engine {reply.get('engine')} in force", flush=True)
        return 0
    print(reply.get("note") or f"building the {wanted} engine", flush=True)
    deadline = time.monotonic() + ENGINE_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
        state, rc = _send({"cmd": "status"})
        if state is None or rc:
            return rc
        if state.get("engine_pending") == wanted:
            continue
        if state.get("engine") == wanted:
            print(f"engine {wanted} in force", flush=True)
            return 0
        if state.get("engine_pending") is None and state.get("engine_problem"):
            print(f"vcamswap: error: {state['engine_problem']}; the {state.get('engine')} engine stays",
                  file=sys.stderr, flush=True)
            return 2
        print(f"another engine was asked for meanwhile; the {state.get('engine')} engine is in force", flush=True)
        return 0
    print(f"the {wanted} engine is still being built; 'vcamswap status' shows when it takes over", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the running daemon's state, face, preset, fps and outputs, as JSON")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("toggle", help="turn the swap on or off in the running daemon")
    p.set_defaults(func=_control("toggle"))
    p = sub.add_parser("face", help="choose the source face in the running daemon")
    p.add_argument("which", metavar="next|prev|NAME")
    p.set_defaults(func=_control("face", "which"))
    p = sub.add_parser("preset", help="choose the quality preset in the running daemon")
    p.add_argument("name", metavar="fast|balanced|quality|next")
    p.set_defaults(func=_control("preset", "name"))
    p = sub.add_parser("likeness", help="how much of the source person the lite engine shows (0..1), in the "
                                        "running daemon")
    p.add_argument("value", metavar="0..1")
    p.set_defaults(func=_control("likeness", "value"))
    p = sub.add_parser("targets", help="swap one face (the main one) or every face in view, in the running daemon")
    p.add_argument("which", choices=["one", "all"])
    p.set_defaults(func=_control("targets", "which"))
    p = sub.add_parser("pause", help="release the camera; the virtual camera shows a still 'paused' frame")
    p.set_defaults(func=_control("pause"))
    p = sub.add_parser("resume", help="take the camera again after pause")
    p.set_defaults(func=_control("resume"))
    p = sub.add_parser("label", help="show or hide the AI label in a corner of Swap Cam")
    p.add_argument("state", choices=["on", "off"])
    p.set_defaults(func=_control("label", "state"))
    p = sub.add_parser("occlusion", help="what keeps hands and glasses in front of the swap, in the running daemon: "
                                         "nothing, the camera's skin colour, the occluder model, or the face parser")
    p.add_argument("kind", choices=list(OCCLUSION_KINDS))
    p.set_defaults(func=_control("occlusion", "kind"))
    p = sub.add_parser("enhance", help="run the face enhancer every N swaps (0 = off), in the running daemon")
    p.add_argument("every", metavar="N")
    p.set_defaults(func=_control("enhance", "every"))
    p = sub.add_parser("boost", help="the inswapper engine's pixel boost, in the running daemon")
    p.add_argument("size", choices=["128", "256", "512"])
    p.set_defaults(func=_control("boost", "size"))
    p = sub.add_parser("model", help="the neural engine's swap model, in the running daemon (installed ones: "
                                     "'vcamswap status' lists them)")
    p.add_argument("name", metavar="|".join(SWAP_MODELS))
    p.set_defaults(func=_control("model", "name"))
    p = sub.add_parser("engine", help="switch the swap engine of the running daemon; it keeps publishing with the "
                                      "current one until the new one is ready")
    p.add_argument("name", metavar="|".join(ENGINE_NAMES))
    p.set_defaults(func=_control("engine", "name"))
    p = sub.add_parser("stop", help="stop the running daemon")
    p.set_defaults(func=_control("stop"))
