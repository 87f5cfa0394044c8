"""A TCP relay that holds every byte for a fixed time in each direction: added network delay where the kernel's
netem is not at hand (it needs root and the sch_netem module). `delay` each way, like `tc qdisc ... netem
delay` on loopback: a request and its answer each wait once, so the round trip grows by twice `delay`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import NamedTuple


class Relay(NamedTuple):
    port: int
    stop: threading.Event
    counts: list[int]  # bytes relayed [to the server, from the server]: what the requests cost on the wire

    def meter(self) -> tuple[int, int]:
        return self.counts[0], self.counts[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, counts: list[int],
                way: int) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def receive() -> None:
        try:
            while data := await reader.read(1 << 16):
                counts[way] += len(data)
                await queue.put((loop.time() + delay, data))
        except (ConnectionError, OSError):
            pass
        await queue.put(None)

    async def send() -> None:
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - loop.time()))  # order kept: every chunk waits the same time
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()

    await asyncio.gather(receive(), send())


def start_relay(target_host: str, target_port: int, delay_s: float) -> Relay:
    """Listen on 127.0.0.1:<free port>, forward to the target with `delay_s` added each way; runs in a thread."""
    ready = threading.Event()
    stop = threading.Event()
    box: list[int] = []
    counts = [0, 0]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    box.append(sock.getsockname()[1])

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP, not on those accepted from a
        # socket() of proto 0: without it a short segment after a long one waits 40 ms for a delayed ACK.
        client_w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, delay_s, counts, 0),
                             _pipe(server_r, client_w, delay_s, counts, 1))

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()

    threading.Thread(target=lambda: asyncio.run(main()), name="delay-relay", daemon=True).start()
    ready.wait(5)
    return Relay(box[0], stop, counts)
