"""The panel's routes, all under /panel and all behind the Guard (guard.py)."""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive

from vcamswap.control.intents import SOCKET_COMMANDS
from vcamswap.faces.library import FaceError
from vcamswap.modelstore.manifest import ModelError
from vcamswap.panel import faces
from vcamswap.panel.guard import ROOT, Guard
from vcamswap.panel.link import PanelLink
from vcamswap.panel.live import Changes, Encoder, controls_view, events, health_view, outline_view, select_choices
from vcamswap.panel.models import Busy as ModelBusy
from vcamswap.panel.models import Models
from vcamswap.panel.tryon import Busy, TryOn, TryOnError

# The intents the panel's controls send: the socket's own names, answered by the socket's own handler; the
# lists (engine, model) once the daemon has an intent for them.
PANEL_INTENTS = ("toggle", "swap", "face", "preset", "likeness", "targets", "pause", "resume", "preview", "bypass",
                 "label", "occlusion", "enhance", "boost", "stop",
                 *(name for name in select_choices() if name in SOCKET_COMMANDS))
FRAME_WAIT_S = 1.0
NO_STORE = {"Cache-Control": "no-store"}


class TooLarge(Exception):
    pass


def static_dir() -> Any:
    return resources.files("vcamswap.panel") / "static"


def error(text: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"ok": False, "error": text.splitlines()[0] if text else "refused"}, status_code=status,
                        headers=NO_STORE)


class Panel:
    """The routes over one PanelLink."""

    def __init__(self, link: PanelLink) -> None:
        self.link = link
        self.encoder = Encoder(link)
        self.changes = Changes(link)
        self.thumbs = faces.Thumbnails()
        self.tryon = TryOn(link)
        self.models_store = Models(link.models_dir)
        self.stopping = threading.Event()

    def app(self, token: str, port: int) -> Guard:
        routes = [
            Route(ROOT + "/", self.page),
            Route(ROOT + "/api/state", self.state),
            Route(ROOT + "/api/events", self.events),
            Route(ROOT + "/api/frame", self.frame),
            Route(ROOT + "/api/face", self.outline),
            Route(ROOT + "/api/intent", self.intent, methods=["POST"]),
            Route(ROOT + "/api/faces", self.add_face, methods=["POST"]),
            Route(ROOT + "/api/faces/{name}", self.remove_face, methods=["DELETE"]),
            Route(ROOT + "/api/faces/{name}/thumb", self.thumb),
            Route(ROOT + "/api/faces/{name}/rename", self.rename_face, methods=["POST"]),
            Route(ROOT + "/api/faces/{name}/tryon", self.try_on),
            Route(ROOT + "/api/doctor", self.doctor),
            Route(ROOT + "/api/models", self.models),
            Route(ROOT + "/api/models/{name}/verify", self.verify_model, methods=["POST"]),
            Route(ROOT + "/api/models/{name}/download", self.download_model, methods=["POST"]),
            Mount(ROOT + "/static", StaticFiles(directory=str(static_dir())), name="static"),
        ]
        return Guard(Starlette(routes=routes), token, port)

    async def page(self, request: Request) -> Response:
        return FileResponse(str(static_dir() / "index.html"), headers=NO_STORE)

    async def status(self) -> dict[str, Any]:
        return await run_in_threadpool(self.link.request, {"cmd": "status"})

    async def state(self, request: Request) -> Response:
        status = await self.status()
        cards = await run_in_threadpool(faces.cards, self.link)
        return JSONResponse({"controls": controls_view(self.link, status), "health": health_view(status),
                             "gallery": [c._asdict() for c in cards]}, headers=NO_STORE)

    async def events(self, request: Request) -> Response:
        return StreamingResponse(events(self.link, self.changes, self.models_store, self.stopping.is_set),
                                 media_type="text/event-stream", headers={**NO_STORE, "X-Accel-Buffering": "no"})

    async def frame(self, request: Request) -> Response:
        which = request.query_params.get("src", "swap")
        if which not in ("swap", "camera"):
            return error("src is swap or camera")
        try:
            after = int(request.query_params.get("after", "0"))
        except ValueError:
            return error("after is a frame number")
        found = await run_in_threadpool(self.encoder.jpeg, which, after, FRAME_WAIT_S)
        if found is None:
            return Response(status_code=204, headers=NO_STORE)
        seq, data = found
        return Response(data, media_type="image/jpeg", headers={**NO_STORE, "X-Frame": str(seq)})

    async def outline(self, request: Request) -> Response:
        frame = request.query_params.get("frame")
        if frame is not None and not frame.isdigit():
            return error("frame is a frame number")
        return JSONResponse(outline_view(self.link, int(frame) if frame else None), headers=NO_STORE)

    async def intent(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error("the request is not JSON")
        if not isinstance(body, dict) or body.get("cmd") not in PANEL_INTENTS:
            return error(f"the panel's commands are {', '.join(PANEL_INTENTS)}")
        arg = body.get("arg")
        req: dict[str, Any] = {"cmd": body["cmd"], **({"arg": str(arg)} if arg is not None else {})}
        reply = await run_in_threadpool(self.link.request, req)
        if not reply.get("ok"):
            return error(str(reply.get("error", "refused")))
        return JSONResponse(reply, headers=NO_STORE)

    async def add_face(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > faces.MAX_UPLOAD:
            return error(f"the upload is larger than {faces.MAX_UPLOAD // 2**20} MB; pick a smaller photo", 413)
        try:
            form = await Request(request.scope, capped(request.receive, faces.MAX_UPLOAD)).form(
                max_files=1, max_fields=2)
            photo, name = form.get("photo"), form.get("name")
            if not isinstance(photo, UploadFile) or not photo.filename:
                return error("no photo in the upload")
            data = await photo.read()
            added = await run_in_threadpool(faces.add_upload, self.link, data, photo.filename,
                                            name if isinstance(name, str) else None)
        except TooLarge:
            return error(f"the upload is larger than {faces.MAX_UPLOAD // 2**20} MB; pick a smaller photo", 413)
        except MultiPartException as e:  # Starlette raises it as an HTTPException inside an application
            return error(f"the upload is not a form with one photo: {e.message}")
        except HTTPException as e:
            return error(f"the upload is not a form with one photo: {e.detail}")
        except FaceError as e:
            return error(str(e))
        return JSONResponse({"ok": True, "name": added}, status_code=201, headers=NO_STORE)

    async def remove_face(self, request: Request) -> Response:
        try:
            path = await run_in_threadpool(faces.remove, self.link, request.path_params["name"])
        except FaceError as e:
            return error(str(e))
        return JSONResponse({"ok": True, "removed": str(path)}, headers=NO_STORE)

    async def rename_face(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return error("the request is not JSON")
        new = body.get("name") if isinstance(body, dict) else None
        if not isinstance(new, str):
            return error('give the new name as {"name": "..."}')
        try:
            name = await run_in_threadpool(faces.rename, self.link, request.path_params["name"], new)
        except FaceError as e:
            return error(str(e))
        return JSONResponse({"ok": True, "name": name}, headers=NO_STORE)

    async def try_on(self, request: Request) -> Response:
        fresh = request.query_params.get("fresh") == "1"
        try:
            done = await run_in_threadpool(self.tryon.get, request.path_params["name"], fresh)
        except Busy as e:
            return error(str(e), 429)
        except TryOnError as e:
            return error(str(e), 409)
        return Response(done.jpeg, media_type="image/jpeg",
                        headers={**NO_STORE, "X-Frame": str(done.frame), "X-Cached": "1" if done.cached else "0"})

    async def thumb(self, request: Request) -> Response:
        data = await run_in_threadpool(self.thumbs.get, self.link, request.path_params["name"])
        if data is None:
            return error("no thumbnail for that face", 404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=5"})

    async def models(self, request: Request) -> Response:
        listed = await run_in_threadpool(self.models_store.listing)
        return JSONResponse({"models": listed, "download": self.models_store.download_view()}, headers=NO_STORE)

    async def verify_model(self, request: Request) -> Response:
        try:
            checked = await run_in_threadpool(self.models_store.verify, request.path_params["name"])
        except ModelError as e:
            return error(str(e))
        return JSONResponse({"ok": True, **checked}, headers=NO_STORE)

    async def download_model(self, request: Request) -> Response:
        try:
            started = await run_in_threadpool(self.models_store.download, request.path_params["name"])
        except ModelBusy as e:
            return error(str(e), 409)
        except ModelError as e:
            return error(str(e))
        return JSONResponse({"ok": True, "download": started}, status_code=202, headers=NO_STORE)

    async def doctor(self, request: Request) -> Response:
        lines = await run_in_threadpool(self.link.doctor)
        return JSONResponse({"lines": [{"ok": x.ok, "topic": x.topic, "text": x.text, "fix": x.fix} for x in lines]},
                            headers=NO_STORE)


def capped(receive: Receive, limit: int) -> Receive:
    """`receive` that raises TooLarge once the body passes `limit` bytes (a body without Content-Length too)."""
    total = 0

    async def wrapped() -> Message:
        nonlocal total
        message = await receive()
        total += len(message.get("body", b""))
        if total > limit:
            raise TooLarge
        return message

    return wrapped
