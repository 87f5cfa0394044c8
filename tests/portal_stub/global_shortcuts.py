"""A stand-in for the XDG desktop portal's GlobalShortcuts, on a real D-Bus session bus.

Owns org.freedesktop.portal.Desktop and answers, as the portal documentation describes:
  org.freedesktop.DBus.Properties Get/GetAll  (version of org.freedesktop.portal.GlobalShortcuts)
  org.freedesktop.portal.GlobalShortcuts      CreateSession, BindShortcuts, ListShortcuts
  org.freedesktop.portal.Session              Close (on the session's object)
Replies to CreateSession/BindShortcuts are Request object paths; the results come as the
org.freedesktop.portal.Request.Response signal on that path.

Its "dialog" (what the user does when asked to confirm the shortcuts) is --dialog accept | rebind | cancel;
rebind moves "toggle" to LOGO+F9. The user's key presses come in on the stand-in's own interface
local.PortalStandIn.Keyboard (Press/Release with a shortcut id) at /local/PortalStandIn, and go out as
Activated/Deactivated to every open session that bound that id.

Writes what it saw to the --record JSON file after every change; prints "ready" once it owns the name.

usage: global_shortcuts.py --record FILE [--dialog accept|rebind|cancel] [--no-interface]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

BUS = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
IFACE = "org.freedesktop.portal.GlobalShortcuts"
PROPS = "org.freedesktop.DBus.Properties"
KEYBOARD = "local.PortalStandIn.Keyboard"
VERSION = 1


class StandIn:
    def __init__(self, conn: Any, record: Path, dialog: str, interface: bool) -> None:
        self.conn, self.record, self.dialog, self.interface = conn, record, dialog, interface
        self.sessions: dict[str, dict[str, Any]] = {}  # session path -> {"sender", "shortcuts", "closed"}
        self.calls: list[str] = []
        self.count = 0

    def save(self) -> None:
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sessions": self.sessions, "calls": self.calls}))
        tmp.replace(self.record)

    def _path(self, kind: str, sender: str, options: dict[str, Any]) -> str:
        key = "handle_token" if kind == "request" else "session_handle_token"
        self.count += 1
        token = options.get(key, ("s", f"t{self.count}"))[1]
        return f"{PATH}/{kind}/{sender.lstrip(':').replace('.', '_')}/{token}"

    def _respond(self, request: str, code: int, results: dict[str, Any]) -> None:
        self.save()  # the record is on disk before the caller hears back, so what it reads next is current
        emitter = DBusAddress(request, interface="org.freedesktop.portal.Request")
        self.conn.send(new_signal(emitter, "Response", "ua{sv}", (code, results)))

    def handle(self, msg: Any) -> None:
        f = msg.header.fields
        iface, member, path, sender = (f.get(HeaderFields.interface), f.get(HeaderFields.member),
                                       f.get(HeaderFields.path), f.get(HeaderFields.sender))
        self.calls.append(f"{iface}.{member}")
        if iface == PROPS and path == PATH:
            self._properties(msg, member)
        elif iface == IFACE and self.interface and member == "CreateSession":
            (options,) = msg.body
            request = self._path("request", sender, options)
            session = self._path("session", sender, options)
            self.conn.send(new_method_return(msg, "o", (request,)))
            self.sessions[session] = {"sender": sender, "shortcuts": {}, "closed": False}
            self._respond(request, 0, {"session_handle": ("s", session)})
        elif iface == IFACE and self.interface and member == "BindShortcuts":
            session, shortcuts, _parent, options = msg.body
            request = self._path("request", sender, options)
            self.conn.send(new_method_return(msg, "o", (request,)))
            self._bind(request, session, shortcuts)
        elif iface == IFACE and self.interface and member == "ListShortcuts":
            session, options = msg.body
            request = self._path("request", sender, options)
            self.conn.send(new_method_return(msg, "o", (request,)))
            self._respond(request, 0, {"shortcuts": ("a(sa{sv})", self._listing(session))})
        elif iface == "org.freedesktop.portal.Session" and member == "Close" and path in self.sessions:
            self.sessions[path]["closed"] = True
            self.conn.send(new_method_return(msg))
        elif iface == KEYBOARD and member in ("Press", "Release"):
            self.conn.send(new_method_return(msg, "u", (self._key(str(msg.body[0]), member == "Press"),)))
        else:
            self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s",
                                     (f"no {iface}.{member} at {path}",)))
        self.save()

    def _properties(self, msg: Any, member: str) -> None:
        wanted = msg.body[0]
        if wanted != IFACE or not self.interface:
            self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs", "s", (f"no interface {wanted}",)))
        elif member == "Get" and msg.body[1] == "version":
            self.conn.send(new_method_return(msg, "v", (("u", VERSION),)))
        elif member == "GetAll":
            self.conn.send(new_method_return(msg, "a{sv}", ({"version": ("u", VERSION)},)))
        else:
            self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs", "s", ("no such property",)))

    def _bind(self, request: str, session: str, shortcuts: list[Any]) -> None:
        if session not in self.sessions or self.dialog == "cancel":
            self._respond(request, 1, {})
            return
        bound = self.sessions[session]["shortcuts"]
        for sid, opts in shortcuts:
            trigger = opts.get("preferred_trigger", ("s", ""))[1]
            if self.dialog == "rebind" and sid == "toggle":
                trigger = "LOGO+F9"
            bound[sid] = {"description": opts.get("description", ("s", ""))[1],
                          "preferred_trigger": opts.get("preferred_trigger", ("s", ""))[1], "trigger": trigger}
        self._respond(request, 0, {"shortcuts": ("a(sa{sv})", self._listing(session))})

    def _listing(self, session: str) -> list[Any]:
        return [(sid, {"description": ("s", b["description"]), "trigger_description": ("s", b["trigger"])})
                for sid, b in self.sessions.get(session, {}).get("shortcuts", {}).items()]

    def _key(self, sid: str, press: bool) -> int:
        sent = 0
        for session, s in self.sessions.items():
            if s["closed"] or sid not in s["shortcuts"]:
                continue
            emitter = DBusAddress(PATH, interface=IFACE)
            member = "Activated" if press else "Deactivated"
            self.conn.send(new_signal(emitter, member, "osta{sv}", (session, sid, int(time.time() * 1000), {})))
            sent += 1
        return sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", type=Path, required=True)
    ap.add_argument("--dialog", choices=["accept", "rebind", "cancel"], default="accept")
    ap.add_argument("--no-interface", action="store_true", help="a portal without GlobalShortcuts")
    args = ap.parse_args()
    conn = open_dbus_connection(bus="SESSION")
    reply = conn.send_and_get_reply(message_bus.RequestName(BUS, 4))  # DO_NOT_QUEUE
    if reply.body[0] != 1:
        raise SystemExit(f"cannot own {BUS}: {reply.body}")
    stand_in = StandIn(conn, args.record, args.dialog, not args.no_interface)
    stand_in.save()
    print("ready", flush=True)
    while True:
        msg = conn.receive()
        if msg.header.message_type == MessageType.method_call:
            stand_in.handle(msg)


if __name__ == "__main__":
    main()
