"""``kinspect serve``: the inspector in a web browser, one ``kinspect tui`` process per browser
tab, through textual-serve's aiohttp ``Server``, subclassed to close what it leaves open
(textual-serve 1.1):

- the WebSocket that starts a session refuses (403) an upgrade whose ``Origin`` is not the page
  kinspect serves. Browsers let any web page open a WebSocket to any host, sending the page's
  origin along; without the check, every page open in the machine's browser could start
  sessions, drive the inspector and spawn processes (cross-site WebSocket hijacking);
- at most ``max_sessions`` sessions at a time (each is a process holding its own machine); one
  more is told so in its terminal and closed;
- no directory listing under ``/static``;
- its own page (``kinspect/data/templates/app_index.html``): the terminal fills the window and
  has the keyboard focus as soon as the page loads.
"""

from __future__ import annotations

import logging
import os
import socket

from aiohttp import WSCloseCode, hdrs, web
from textual_serve.server import Server
from yarl import URL

from .data import TEMPLATES_DIR
from .engine.errors import KinspectError
from .engine.tables import count

log = logging.getLogger("kinspect.serve")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
"""Names of this machine's loopback interface: a page served on one of them is also reached,
and may connect, through the others."""


def http_origin(host: str, port: int) -> str:
    """The origin (RFC 6454) of a page served on ``host``:``port``."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_listen(host: str, port: int) -> None:
    """Resolve ``host`` and bind ``port`` on it once, so that a bad ``--host`` or a ``--port``
    in use is one line and exit status 2 before anything is served."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise KinspectError(f"cannot resolve {host!r}: {e.strerror}", "--host") from None
    try:
        with socket.create_server(address, family=family):
            pass
    except OSError as e:
        raise KinspectError(
            f"cannot listen on {http_origin(host, port)}: {os.strerror(e.errno) if e.errno else e}",
            "--port",
        ) from None


class KinspectServer(Server):
    """textual-serve's ``Server`` with an Origin check, a session cap, no /static listing and
    kinspect's page."""

    def __init__(self, command: str, host: str, port: int, max_sessions: int) -> None:
        super().__init__(
            command,
            host=host,
            port=port,
            title="kinspect",
            public_url=http_origin(host, port),
            templates_path=TEMPLATES_DIR,
        )
        self.max_sessions = max_sessions
        self.open_sessions = 0
        """Sessions (WebSockets with their ``kinspect tui`` process) running now."""
        self.origin_hosts = LOOPBACK_NAMES if host in LOOPBACK_NAMES else frozenset({host})

    def same_origin(self, origin: str) -> bool:
        """Whether a WebSocket's ``Origin`` header names a page this server serves."""
        url = URL(origin)
        return (
            url.scheme == "http"
            and url.host is not None
            and url.host.lower() in self.origin_hosts
            and url.port == self.port
        )

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        statics = self.statics_path

        @web.middleware
        async def no_static_listing(request: web.Request, handler) -> web.StreamResponse:
            resource = request.match_info.route.resource
            if (
                resource is not None
                and resource.name == "static"
                and (statics / request.match_info.get("filename", "")).is_dir()
            ):
                raise web.HTTPForbidden()
            return await handler(request)

        app.middlewares.append(no_static_listing)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Quiet: ``kinspect serve`` has said where it serves (textual-serve prints its logo)."""

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and not self.same_origin(origin):
            log.warning("kinspect: refused a WebSocket from %s (not %s)", origin, self.public_url)
            raise web.HTTPForbidden(
                text=f"kinspect: WebSocket from {origin} refused: not {self.public_url}\n"
            )
        if self.open_sessions >= self.max_sessions:
            return await self._refuse_session(request)
        self.open_sessions += 1
        try:
            return await super().handle_websocket(request)
        finally:
            self.open_sessions -= 1

    async def _refuse_session(self, request: web.Request) -> web.WebSocketResponse:
        """One session too many: say so in the page's terminal, then close (1013, try again
        later)."""
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        await websocket.send_bytes(
            f"\r\nkinspect: {count(self.open_sessions, 'session')} open, the most this server "
            f"allows (kinspect serve --max-sessions {self.max_sessions}).\r\n"
            "Close one, then press Restart.\r\n".encode()
        )
        await websocket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many sessions")
        return websocket
