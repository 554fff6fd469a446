"""Each bad request gets a 4xx JSON error naming the problem, and the service goes on serving:
after each, a good request still gets the classifier's own answer."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zlib

import numpy as np
import pytest

from lenet5.serve.inputs import MAX_BODY_BYTES, MAX_IMAGES, MAX_PIXELS, MAX_REQUEST_PIXELS

from .conftest import QUIET_CLIENT, digit_pixels, png_bytes

pytestmark = QUIET_CLIENT


def png_bomb(side: int = 10_000) -> bytes:
    """A valid greyscale PNG of side×side black pixels: 100 MB decoded, about 100 KB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then the row
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def gif_frames(count: int) -> bytes:
    from PIL import Image

    frames = [Image.new("L", (8, 8), value % 256) for value in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=10, disposal=1)
    return buffer.getvalue()


def pixels_json(pixels) -> dict:
    return {"pixels": pixels}


GOOD = digit_pixels(11)
BAD_REQUESTS = {
    # name: (request arguments, status, kind, fragment of the message)
    "not an image": (dict(content=b"hello, I am text", headers={"Content-Type": "image/png"}),
                     422, "bad_image", "cannot read image"),
    "text body": (dict(content=b"hello", headers={"Content-Type": "text/plain"}),
                  415, "unsupported_media_type", "'text/plain' is not accepted"),
    "empty image body": (dict(content=b"", headers={"Content-Type": "image/png"}), 400, "empty_body", "empty"),
    "empty JSON body": (dict(content=b"", headers={"Content-Type": "application/json"}), 400, "empty_body", "empty"),
    "empty body, no type": (dict(content=b""), 400, "empty_body", "empty"),
    "malformed JSON": (dict(content=b'{"pixels": [[1, 2', headers={"Content-Type": "application/json"}),
                       400, "malformed_json", "not valid JSON"),
    "huge number": (dict(content=b'{"pixels": ' + b"9" * 5000 + b"}", headers={"Content-Type": "application/json"}),
                    400, "malformed_json", "not valid JSON"),
    "27 rows": (dict(json=pixels_json(GOOD[:27].tolist())), 422, "bad_shape", "must be 28 rows, found a list of 27"),
    "a short row": (dict(json=pixels_json([*GOOD[:27].tolist(), [0] * 5])), 422, "bad_shape", "rows of 5, 28"),
    "a string pixel": (dict(json=pixels_json([["a"] * 28] * 28)), 422, "bad_shape", "a string of 1 characters"),
    "a pixel of 300": (dict(json=pixels_json([[300] * 28] * 28)), 422, "bad_shape", "0..255, found 300"),
    "no pixels field": (dict(json={"image": 1}), 422, "bad_shape", "'pixels' field"),
    "empty batch": (dict(json={"batch": []}), 422, "bad_shape", "non-empty list"),
    "bad batch entry": (dict(json={"batch": [pixels_json(GOOD.tolist()), {"pixels": [[0]]}]}),
                        422, "bad_shape", "batch[1]: 'pixels' must be 28 rows"),
    "batch too big": (dict(json={"batch": [pixels_json([[0]])] * (MAX_IMAGES + 1)}),
                      413, "too_many_images", f"at most {MAX_IMAGES}"),
    "multipart without image": (dict(files={"photo": ("a.png", png_bytes(GOOD), "image/png")}),
                                400, "empty_body", "no `image` field (found fields: photo)"),
    "multipart text field": (dict(data={"image": "not a file"}, files={"x": ("x", b"x")}),
                             422, "bad_image", "is text, expected a file"),
    "multipart no boundary": (dict(content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}),
                              400, "malformed_multipart", "cannot be parsed"),
    "body over the limit": (dict(content=b"\0" * (MAX_BODY_BYTES + 1), headers={"Content-Type": "image/png"}),
                            413, "too_large", f"larger than {MAX_BODY_BYTES:,} bytes"),
    "decompression bomb": (dict(content=png_bomb(), headers={"Content-Type": "image/png"}),
                           422, "bad_image", "10000x10000 pixels is more than"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_a_bad_request_is_a_4xx_naming_the_problem_and_the_service_goes_on(client, classifier, name):
    arguments, status, kind, fragment = BAD_REQUESTS[name]
    response = client.post("/predict", **arguments)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["kind"] == kind
    assert fragment in error["message"]
    assert "\n" not in error["message"] and len(error["message"]) <= 1000
    good = client.post("/predict", content=png_bytes(GOOD), headers={"Content-Type": "image/png"})
    assert good.status_code == 200
    assert good.json()["label"] == classifier.predict(png_bytes(GOOD)).label


def apng_frames(count: int, side: int) -> bytes:
    from PIL import Image

    frames = [Image.new("L", (side, side), value % 256) for value in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:], duration=10)
    return buffer.getvalue()


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """The image decoders Pillow starts (one per frame decoded), by name; "raw" (copying
    pixels already in memory) is left out."""
    from PIL import Image

    started = []
    real = Image._getdecoder

    def spy(mode, decoder_name, *args, **kwargs):
        if decoder_name != "raw":
            started.append(decoder_name)
        return real(mode, decoder_name, *args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", spy)
    return started


@pytest.mark.parametrize("name,body,content_type,decoder", [
    ("a GIF of 10,000 frames", gif_frames(10_000), "image/gif", "gif"),
    ("an APNG of 100 frames", apng_frames(100, 400), "image/png", "zip"),
])
def test_an_animation_is_read_from_its_first_frame_and_no_other_frame_is_decoded(client, decodes, name, body,
                                                                                  content_type, decoder):
    response = client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200 and response.json()["verdict"] == "empty"  # a flat first frame
    assert decodes == [decoder]


def test_images_holding_too_many_pixels_together_are_refused_before_any_is_decoded(client, decodes):
    side = 6000  # each under MAX_PIXELS; three of them over MAX_REQUEST_PIXELS
    assert side * side <= MAX_PIXELS < MAX_REQUEST_PIXELS < 3 * side * side
    bomb = png_bomb(side)
    response = client.post("/predict", files=[("image", (f"{i}.png", bomb, "image/png")) for i in range(3)])
    assert response.status_code == 413, response.text
    assert response.json()["error"] == {"kind": "too_many_pixels", "message": (
        f"the images hold {3 * side * side:,} pixels together; at most {MAX_REQUEST_PIXELS:,} per request "
        f"(send fewer, or smaller)")}
    assert decodes == []


def test_json_pixels_never_wait_for_a_decoding_slot(classifier, monkeypatch):
    """With every decoding slot taken (none at all, here), a JSON request is still answered:
    it decodes nothing, so it does not queue behind images being decoded."""
    from lenet5.serve.app import create_app

    monkeypatch.setattr("lenet5.serve.app.DECODERS", 0)
    app = create_app(classifier)
    body = json.dumps({"pixels": GOOD.tolist()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    status, answer, _ = asyncio.run(asyncio.wait_for(call(app, headers, [body]), timeout=60))
    assert status == 200 and answer["label"] == classifier.predict(GOOD).label


async def call(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, dict, int]:
    """Send one POST /predict straight through ASGI; (status, JSON body, chunks the app read)."""
    pulled = 0
    sent = []

    async def receive():
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), pulled


MEGABYTE = b"\0" * (1 << 20)


def test_a_body_announced_too_large_is_refused_before_a_byte_is_read(classifier):
    from lenet5.serve.app import create_app

    app = create_app(classifier)
    headers = [(b"content-type", b"image/png"), (b"content-length", str(50 << 20).encode())]
    status, body, pulled = asyncio.run(call(app, headers, [MEGABYTE] * 50))
    assert (status, body["error"]["kind"], pulled) == (413, "too_large", 0)
    assert "52,428,800 bytes" in body["error"]["message"]


def test_a_body_without_length_is_cut_off_once_it_passes_the_limit(classifier):
    from lenet5.serve.app import create_app

    app = create_app(classifier)
    status, body, pulled = asyncio.run(call(app, [(b"content-type", b"image/png")], [MEGABYTE] * 50))
    assert (status, body["error"]["kind"]) == (413, "too_large")
    assert pulled == MAX_BODY_BYTES // len(MEGABYTE) + 1  # the chunk that crossed the limit, no more


def test_a_content_length_that_is_no_number_is_refused(classifier):
    from lenet5.serve.app import create_app

    status, body, pulled = asyncio.run(call(create_app(classifier), [(b"content-length", b"12abc")], [b"x"]))
    assert (status, body["error"]["kind"], pulled) == (400, "bad_request", 0)


def test_a_refusal_at_the_gate_is_counted_under_its_route(client):
    client.post("/predict", content=b"\0" * (MAX_BODY_BYTES + 1), headers={"Content-Type": "image/png"})
    metrics = client.get("/metrics").text
    assert 'lenet5_requests_total{method="POST",path="/predict",status="413"} 1' in metrics
    assert 'lenet5_errors_total{kind="too_large"} 1' in metrics


def test_a_bad_query_parameter_is_a_json_422(client):
    response = client.post("/predict?features=maybe", json={"pixels": GOOD.tolist()})
    assert response.status_code == 422
    assert response.json()["error"]["kind"] == "bad_parameter" and "features" in response.json()["error"]["message"]


def test_unknown_routes_and_methods_are_json_errors(client):
    assert client.get("/predict").json()["error"]["kind"] == "method_not_allowed"
    missing = client.get("/nothing/here")
    assert missing.status_code == 404 and missing.json()["error"]["kind"] == "not_found"


def test_a_model_whose_outputs_are_not_finite_is_a_500_and_the_service_goes_on(untrained_run):
    from fastapi.testclient import TestClient

    from lenet5.run.classifier import load
    from lenet5.serve.app import create_app

    broken = load(untrained_run)
    dense = [layer for layer in broken.model.layers if hasattr(layer, "weight") and layer.weight is not None][-1]
    saved = dense.weight.value.copy()
    dense.weight.value[...] = np.nan
    with TestClient(create_app(broken)) as client:
        failed = client.post("/predict", json={"pixels": GOOD.tolist()})
        assert failed.status_code == 500 and "not finite" in failed.json()["error"]["message"]
        dense.weight.value[...] = saved
        assert client.post("/predict", json={"pixels": GOOD.tolist()}).status_code == 200


def test_a_body_not_whole_by_its_deadline_is_a_408_that_closes_the_connection(classifier):
    """A body sent a byte at a time, or a chunk announced and never sent: the request is
    answered 408 once `request_timeout` has passed since its head, and the connection closed."""
    from lenet5.serve.app import create_app

    app = create_app(classifier, request_timeout=0.5)
    sent = []
    first = [{"type": "http.request", "body": b"\x89PNG", "more_body": True}]

    async def receive():  # one piece of the body, then nothing more, ever
        if first:
            return first.pop()
        await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"image/png"), (b"content-length", b"1000")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=60))
    start = next(message for message in sent if message["type"] == "http.response.start")
    assert start["status"] == 408 and (b"connection", b"close") in start["headers"]
    body = json.loads(b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body"))
    assert body["error"] == {"kind": "timeout", "message": "the request body did not arrive whole within 0.5 s"}
