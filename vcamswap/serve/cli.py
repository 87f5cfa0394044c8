"""`vcamswap serve`: run the swap server, or write a Triton model repository with --export-repo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vcamswap.serve.server import ServeError, ServeOptions, parse_listen, serve
from vcamswap.serve.tunnel import TOOLS
from vcamswap.settings import default_models_dir


def port_number(allow_off: bool = False) -> Callable[[str], int]:
    """An argparse type: a TCP port 1..65535 (0 too when it means off), else argparse's one-line error."""

    def parse(text: str) -> int:
        low = 0 if allow_off else 1
        if not text.strip().isdigit() or not low <= int(text) <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not a port number {low} to 65535")
        return int(text)

    parse.__name__ = "port"
    return parse


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the neural swap to remote clients (Triton Inference Server)")
    p.add_argument("--listen", default="127.0.0.1:8001", metavar="HOST:PORT",
                   help="gRPC address (default 127.0.0.1:8001; off loopback needs --tls or --insecure, and a token)")
    p.add_argument("--tls", nargs=2, type=Path, metavar=("CERT", "KEY"), help="serve gRPC over TLS (PEM files)")
    p.add_argument("--insecure", action="store_true", help="allow plain gRPC off loopback (trusted network, tunnel)")
    p.add_argument("--http-port", type=port_number(allow_off=True), default=0, metavar="PORT",
                   help="the HTTP door (KServe v2) on 127.0.0.1:PORT, for a TLS tunnel or reverse proxy "
                        "(default 0: a free port, printed at start)")
    p.add_argument("--tunnel", choices=sorted(TOOLS),
                   help="open a public HTTPS address with this tool (on PATH) and print the laptop's line; "
                        "needs --token-file")
    p.add_argument("--token-file", help="a file holding the shared token every request must carry")
    p.add_argument("--models", help="models folder (default: the one 'vcamswap models' fills)")
    p.add_argument("--provider", help="onnxruntime execution provider (default: best present)")
    p.add_argument("--metrics-port", type=port_number(allow_off=True), default=0, metavar="PORT",
                   help="serve Prometheus metrics on 127.0.0.1:PORT, to every user of this machine (default 0: off)")
    p.add_argument("--max-batch", type=int, default=16, help="most requests joined in one model call (default 16)")
    p.add_argument("--queue-delay-us", type=int, default=2000,
                   help="how long a request may wait for others to join its batch (default 2000 us)")
    p.add_argument("--export-repo", type=Path, metavar="DIR",
                   help="write a Triton model repository for the stock container instead of serving")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    # numpy and onnx load for `serve`, not with every command
    from vcamswap.engines.remote.client import read_token

    models = Path(args.models).expanduser() if args.models else default_models_dir()
    try:
        if args.export_repo is not None:
            from vcamswap.serve.export import export_repo

            for line in export_repo(models, args.export_repo, args.max_batch, args.queue_delay_us):
                print(line)
            return 0
        host, port = parse_listen(args.listen)
        options = ServeOptions(
            host=host, port=port, metrics_port=args.metrics_port,
            tls=(args.tls[0], args.tls[1]) if args.tls else None, insecure=args.insecure,
            token=read_token(args.token_file), max_batch=max(1, args.max_batch),
            queue_delay_us=max(0, args.queue_delay_us), http_port=args.http_port, tunnel=args.tunnel)
        return serve(options, models, args.provider)
    except (ServeError, ValueError) as e:
        print(f"vcamswap: error: {e}", file=sys.stderr)
        return 2
