"""``kinspect serve`` (issue 11, A7 and B7): the WebSocket refuses other origins, sessions are
capped, /static lists nothing, the page is kinspect's (terminal focused and filling the window),
the options are checked and shown with their defaults.

The server runs on a loopback port (aiohttp's test server) with a harmless command in place of
``kinspect tui``: a process that speaks textual-serve's protocol just enough to say "ready" and
then waits for the quit that ends its session.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import sys

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from textual_serve.app_service import AppService

from conftest import ROOT
from kinspect.cli import main
from kinspect.commands.ui import MAX_SESSIONS
from kinspect.serve import KinspectServer

READY_THEN_WAIT = """
import sys
out = sys.stdout.buffer
out.write(b"__GANGLION__\\n" + b"D" + (5).to_bytes(4, "big") + b"ready")
out.flush()
for chunk in iter(lambda: sys.stdin.buffer.read1(4096), b""):
    if b'"quit"' in chunk:
        break
"""
HARMLESS = shlex.join([sys.executable, "-c", READY_THEN_WAIT])
HOST, PORT = "127.0.0.1", 8000
"""Where the server believes it serves (its origin); the test server listens on a free port."""
TIMEOUT = 20


@pytest.fixture
async def serve(monkeypatch):
    """serve(max_sessions) -> (the KinspectServer, a client of it)."""
    started, processes = [], []
    open_app_process = AppService._open_app_process

    async def recorded(self, *args, **kwargs):
        processes.append(await open_app_process(self, *args, **kwargs))
        return processes[-1]

    monkeypatch.setattr(AppService, "_open_app_process", recorded)

    async def start(max_sessions: int = MAX_SESSIONS):
        server = KinspectServer(HARMLESS, HOST, PORT, max_sessions)
        client = TestClient(TestServer(await server._make_app(), host=HOST))
        await client.start_server()
        started.append((server, client))
        return server, client

    yield start
    for server, client in started:
        await _until(lambda server=server: server.open_sessions == 0)
        await client.close()
    # textual-serve leaves its processes' pipes to the garbage collector: close them while the
    # loop is still open
    for process in processes:
        process.stdin.close()
        await asyncio.wait_for(process.wait(), TIMEOUT)
    await asyncio.sleep(0)


async def _until(condition) -> None:
    """Wait (boundedly) for something the server does after the client's part is done."""
    for _ in range(TIMEOUT * 100):
        if condition():
            return
        await asyncio.sleep(0.01)


async def _session(client: TestClient, origin: str | None = f"http://{HOST}:{PORT}"):
    headers = {"Origin": origin} if origin is not None else {}
    return await client.ws_connect("/ws?width=80&height=24", headers=headers)


async def _ready(ws) -> bytes:
    message = await asyncio.wait_for(ws.receive(), TIMEOUT)
    return message.data


# --- B7: who may open a session -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:8001", "https://127.0.0.1:8000", "null"]
)
async def test_a_websocket_from_another_origin_is_refused(serve, origin):
    server, client = await serve()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _session(client, origin)
    assert refused.value.status == 403
    assert server.open_sessions == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "origin", [f"http://{HOST}:{PORT}", f"http://localhost:{PORT}", f"http://[::1]:{PORT}", None]
)
async def test_the_served_page_and_non_browser_clients_get_a_session(serve, origin):
    """The served origin, its loopback aliases (the page reached as localhost), and clients
    that send no Origin (browsers always send one with a WebSocket)."""
    server, client = await serve()
    ws = await _session(client, origin)
    assert await _ready(ws) == b"ready"
    assert server.open_sessions == 1
    await ws.close()


@pytest.mark.slow
async def test_sessions_are_capped(serve):
    server, client = await serve(max_sessions=2)
    first, second = await _session(client), await _session(client)
    assert [await _ready(first), await _ready(second)] == [b"ready", b"ready"]
    third = await _session(client)
    told = await _ready(third)
    assert b"2 sessions open, the most this server allows" in told
    closed = await asyncio.wait_for(third.receive(), TIMEOUT)
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 1013
    await first.close()
    await _until(lambda: server.open_sessions < 2)  # once the first's process has quit
    fourth = await _session(client)
    assert await _ready(fourth) == b"ready"
    await second.close()
    await fourth.close()


# --- the page and its files ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/static", "/static/", "/static/css", "/static/js/"])
async def test_static_directories_are_not_listed(serve, path):
    _, client = await serve()
    response = await client.get(path)
    assert response.status == 403
    assert "Index of" not in await response.text()


@pytest.mark.slow
async def test_static_files_are_served(serve):
    _, client = await serve()
    response = await client.get("/static/js/textual.js")
    assert response.status == 200


@pytest.mark.slow
async def test_the_page_is_kinspects(serve):
    """kinspect's template: the WebSocket of the served origin, the terminal filling the window,
    focused on load, and no font fetched from elsewhere."""
    _, client = await serve()
    response = await client.get("/")
    page = await response.text()
    assert response.status == 200
    assert f'data-session-websocket-url="ws://{HOST}:{PORT}/ws"' in page
    assert ".xterm-helper-textarea" in page and "input.focus()" in page
    assert "position: fixed;\n        inset: 0;" in page
    assert "fonts.googleapis.com" not in page


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch):
    """KinspectServer.serve records the server instead of serving."""
    servers = []
    monkeypatch.setattr(KinspectServer, "serve", lambda self, *a, **k: servers.append(self))
    return servers


def test_serve_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for default in (
        "(default: localhost)",
        "(default: 8000)",
        f"(default: {MAX_SESSIONS})",
        "(default: x86_64)",
    ):
        assert default in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--port", "99999"], "argument --port: 99999 is not a TCP port (1..65535)"),
        (["--port", "0"], "argument --port: 0 is not a TCP port (1..65535)"),
        (["--port", "-1"], "argument --port: -1 is not a TCP port (1..65535)"),
        (["--port", "http"], "argument --port: 'http' is not a number"),
        (["--max-sessions", "0"], "argument --max-sessions: 0 is not a positive number"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(served, capsys, argv, message):
    with pytest.raises(SystemExit) as done:
        main(["serve", *argv])
    assert done.value.code == 2
    assert capsys.readouterr().err == f"kinspect: {message}\n"
    assert not served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_an_unresolvable_host_is_one_line_and_exit_2(served, capsys):
    assert main(["serve", "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinspect: --host: cannot resolve 'no-such-host.invalid': ")
    assert err.count("\n") == 1 and not served


def test_a_port_in_use_is_one_line_and_exit_2(served, capsys):
    with socket.create_server((HOST, 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--host", HOST, "--port", str(port)]) == 2
    assert (
        capsys.readouterr().err
        == f"kinspect: --port: cannot listen on http://{HOST}:{port}: Address already in use\n"
    )
    assert not served


def test_serve_runs_the_tui_command_through_kinspects_server(served, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    port = _free_port()
    assert (
        main(
            [
                "serve",
                "samples/workloads/demo.kw",
                "--host",
                HOST,
                "--port",
                str(port),
                "--mem",
                "64M",
                "--max-sessions",
                "2",
            ]
        )
        == 0
    )
    (server,) = served
    assert (server.host, server.port, server.max_sessions) == (HOST, port, 2)
    assert server.public_url == f"http://{HOST}:{port}"
    assert "-m kinspect.cli tui" in server.command
    assert str(ROOT / "samples/workloads/demo.kw") in server.command
    assert "--mem 64M" in server.command
    assert (
        capsys.readouterr().out
        == f"kinspect: serving on http://{HOST}:{port}, at most 2 sessions at once (ctrl+c stops)\n"
    )


def test_the_built_in_demo_is_served_by_name(served, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "demo", "--host", HOST, "--port", str(_free_port())]) == 0
    (server,) = served
    assert str(ROOT / "kinspect/data/workloads/demo.kw") in server.command
