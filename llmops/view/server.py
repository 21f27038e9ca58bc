"""Serve the viewer with uvicorn on a socket bound here (so port 0 picks a free port we can print)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass

from llmops.errors import UserError
from llmops.view.app import create_app, is_loopback, new_token
from llmops.view.queries import ViewProject


@dataclass(frozen=True)
class ServeInfo:
    """Where the viewer listens, as printed at start.

    Attributes:
        url: The address to open (with the access token when one is needed).
        host: The bound address.
        port: The bound port.
        token: The access token, or None on a loopback bind without one.
    """

    url: str
    host: str
    port: int
    token: str | None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port).

    Raises:
        UserError: when the address cannot be bound (port in use, unknown host).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"cannot resolve --host {host}: {exc.strerror}", key="--host") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}", key="--port",
                        hint="another program uses this port: pass --port N (or --port 0 for any free port)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(project: ViewProject, *, host: str = "127.0.0.1", port: int = 8484, read_only: bool = False,
          token: str | None = None, on_ready: Callable[[ServeInfo], None] | None = None) -> None:
    """Serve ``llmops view`` until interrupted.

    A loopback ``host`` needs no token (one is used when given). Any other host always needs
    one: ``token`` or a fresh one, which ``on_ready`` receives to print, as Jupyter does.

    Args:
        project: The open project.
        host: Address to bind (default loopback).
        port: Port (0: any free port).
        read_only: Refuse review writes.
        token: Access token (None: generated for a non-loopback host, none on loopback).
        on_ready: Called with the address once the socket listens (before serving).

    Raises:
        UserError: for an empty token, or an address that cannot be bound.
    """
    import uvicorn

    loopback = is_loopback(host)
    if token is not None and not token.strip():
        raise UserError("the access token is empty", key="--token",
                        hint="omit --token to have one generated, or pass a non-empty one")
    if not loopback and token is None:
        token = new_token()
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}/" + (f"?token={token}" if token else "")
    app = create_app(project, read_only=read_only, token=token, loopback=loopback)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(ServeInfo(url=url, host=host, port=bound_port, token=token))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        project.close()
