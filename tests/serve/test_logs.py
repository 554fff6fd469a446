"""The service's log: one JSON line per request, every other line JSON too, never a traceback;
a repeated message is collapsed; an aborted upload is a 499, not a 500."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading

import httpx
import pytest

from ..helpers.commands import STARTUP_SECONDS, Server
from .conftest import QUIET_CLIENT, digit_pixels

pytestmark = QUIET_CLIENT


async def aborted(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict]:
    """A POST /predict whose client leaves after `chunks`, through ASGI; the messages sent back."""
    incoming = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    sent = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("content_type", [b"image/png", b"multipart/form-data; boundary=xyz"])
def test_an_aborted_upload_is_one_499_line_with_no_traceback(classifier, caplog, content_type):
    from lenet5.serve.app import create_app

    app = create_app(classifier)
    headers = [(b"content-type", content_type), (b"content-length", b"100000")]
    first = b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG"
    with caplog.at_level(logging.INFO):
        sent = asyncio.run(aborted(app, headers, [first]))
    assert sent == []  # nobody to answer
    assert [(record.name, record.levelname) for record in caplog.records] == [("lenet5.serve", "INFO")]
    line = json.loads(caplog.records[0].getMessage())
    assert (line["method"], line["path"], line["status"]) == ("POST", "/predict", 499)
    assert caplog.records[0].exc_info is None


def record(name: str, message: str, level=logging.WARNING, error: BaseException | None = None, **extra):
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    made = logging.LogRecord(name, level, __file__, 1, message, None, exc_info)
    made.__dict__.update(extra)
    return made


def test_every_record_is_one_json_line_and_an_exception_is_named_not_traced():
    from lenet5.serve.logs import JsonLines

    try:
        raise OSError(24, "Too many open files")
    except OSError as error:
        raised = error
    formatter = JsonLines()
    request = formatter.format(record("lenet5.serve", json.dumps({"method": "GET", "status": 200}), logging.INFO,
                                      request=True))
    accept = formatter.format(record("asyncio", "socket.accept() out of system resource\nsocket: <fd=6>",
                                     logging.ERROR, raised))
    assert json.loads(request) == {"method": "GET", "status": 200}
    assert "\n" not in accept and "Traceback" not in accept
    line = json.loads(accept)
    assert line["level"] == "error" and line["logger"] == "asyncio"
    assert line["message"] == "socket.accept() out of system resource socket: <fd=6>"
    assert line["error"] == "OSError: [Errno 24] Too many open files"
    assert line["at"].endswith("in test_every_record_is_one_json_line_and_an_exception_is_named_not_traced")


def test_a_repeated_message_is_written_once_per_window_with_the_count_left_out():
    from lenet5.serve.logs import RepeatLimiter

    now = [0.0]
    limiter = RepeatLimiter(window=10.0, clock=lambda: now[0])
    accept = [record("asyncio", f"socket.accept() out of system resource\nsocket: <{i}>") for i in range(5000)]
    assert [limiter.filter(r) for r in accept].count(True) == 1
    assert all(limiter.filter(record("lenet5.serve", "{}", logging.INFO, request=True)) for _ in range(100))
    assert limiter.filter(record("uvicorn.error", "Exceeded concurrency limit."))  # another message
    now[0] = 10.0
    later = record("asyncio", "socket.accept() out of system resource")
    assert limiter.filter(later) and later.repeated == 4999
    assert not limiter.filter(record("asyncio", "socket.accept() out of system resource"))


def raw_request(port: int, data: bytes, *, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=STARTUP_SECONDS) as connection:
        connection.sendall(data)
        if not read:
            return b""
        connection.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: connection.recv(65536), b""))


def test_uvicorn_and_python_multipart_lines_are_json_too(untrained_run):
    """A real server: a malformed multipart body (python-multipart warns), a request uvicorn
    cannot parse (uvicorn warns), an aborted upload and a good request; every line on stderr
    but the banner is JSON, one per request that reached the app, and none is a traceback."""
    with Server(untrained_run) as server:
        with httpx.Client(base_url=server.url, timeout=STARTUP_SECONDS) as client:
            malformed = client.post("/predict", content=b"--abc\r\nxx", headers={
                "Content-Type": "multipart/form-data; boundary=xyz"})
            assert malformed.status_code == 400
            assert raw_request(server.port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
            raw_request(server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                                     b"Content-Length: 100000\r\n\r\n\x89PNG", read=False)
            for _ in range(STARTUP_SECONDS * 10):  # the server learns of the abort on its own time
                if 'status="499"' in client.get("/metrics").text:
                    break
                threading.Event().wait(0.1)
            assert client.post("/predict", json={"pixels": digit_pixels(1).tolist()}).status_code == 200
    lines = server.stderr.strip().splitlines()
    assert lines[0].startswith("serving ") and "Traceback" not in server.stderr
    records = [json.loads(line) for line in lines[1:]]
    requests = [(r["method"], r["path"], r["status"]) for r in records if "status" in r]
    assert ("POST", "/predict", 400) in requests and ("POST", "/predict", 499) in requests
    assert ("POST", "/predict", 200) in requests
    others = {(r["logger"], r["message"]) for r in records if "status" not in r}
    assert ("uvicorn.error", "Invalid HTTP request received.") in others
    assert any(logger.startswith("python_multipart") for logger, _ in others), others

