"""The HTTP service around a trained run: `create_app(classifier)` gives the FastAPI app.

Routes:
    GET  /               the draw-a-digit page (static/index.html, page.js, page.css)
    POST /predict        an image, pixels, or a batch of either -> label, probabilities, top 3,
                         the 28×28 input the network saw, the preprocessing verdict;
                         `?features=1` adds the C1 and C3 feature maps
    GET  /model          architecture, parameter count, test metrics
    GET  /healthz        liveness
    GET  /metrics        Prometheus text: requests, latency histogram, errors by kind, batch sizes
    GET  /openapi.json   the schema FastAPI derives; GET /docs renders it as plain HTML, offline

Every request is one JSON log line (method, path, status, ms, batch size) on the
`lenet5.serve` logger; a client that leaves before its answer is a 499 there (nginx's number),
with no traceback. A body over `max_body` bytes is refused before it is read: by its
Content-Length when it has one, else as soon as the bytes received pass the limit. A body not
whole within `request_timeout` seconds of its head is answered 408. Every refusal is a 4xx
JSON `{"error": {"kind": ..., "message": ...}}` naming the problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..errors import Lenet5Error
from ..run.classifier import CONFIDENCE_DIGITS, ranked
from .batching import MicroBatcher
from .docs_page import docs_html
from .features import conv_feature_maps
from .inputs import MAX_BODY_BYTES, MAX_IMAGES, Item, RequestError, check_image_headers, items_from_json, media_type
from .logs import log_request
from .metrics import Metrics

log = logging.getLogger("lenet5.serve")

DECODERS = 4  # requests decoding images at once: each may take up to image.DECODE_BUDGET of memory
STATIC_FILES = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
PREDICT_BODY = {  # what /predict reads, for the OpenAPI schema (the body is parsed by hand)
    "required": True,
    "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        "application/json": {"schema": {"oneOf": [
            {"type": "object", "properties": {"pixels": {"type": "array", "items": {"type": "array"}}},
             "required": ["pixels"]},
            {"type": "object", "properties": {"batch": {"type": "array", "items": {"type": "object"}}},
             "required": ["batch"]},
        ]}},
    },
}


class BodyTooLarge(Exception):
    """Raised by the body reader when a body without a Content-Length passes the limit."""


class BodyTooSlow(Exception):
    """Raised by the body reader when the body is not whole by its deadline."""


def create_app(classifier, *, batching: bool = True, max_batch: int = 64, max_wait: float = 0.002,
               max_body: int = MAX_BODY_BYTES, request_timeout: float = 30.0, forward=None) -> FastAPI:
    """The service for `classifier` (a `lenet5.run.classifier.Classifier`: its `model`, `metadata`,
    `class_names`, `name` and `info()` are used).

    Args:
        batching: gather concurrent requests into one forward pass (`MicroBatcher`); without
            it each request runs the model alone, one at a time.
        max_batch: the most images a gathered forward pass carries.
        max_wait: seconds a batch waits for more requests after its first.
        max_body: the largest request body accepted, in bytes.
        request_timeout: seconds a body has to arrive whole, from the end of its head.
        forward: (N, 28, 28) uint8 -> (N, 10) probabilities; by default the classifier's model
            through `Classifier.probabilities`, the path `lenet5 predict` takes too. The load
            benchmark passes a PyTorch twin's.
    """
    metrics = Metrics()
    decoding = asyncio.Semaphore(DECODERS)
    model = _ModelRunner(classifier, metrics, batching=batching, max_batch=max_batch, max_wait=max_wait,
                         forward=forward)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        model.close()

    app = FastAPI(title="lenet5", version=_version(), docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="A trained LeNet-5 behind HTTP: draw a digit at /, or POST images to /predict.")
    page = {name: (resources.files(__package__) / "static" / name).read_text("utf-8")
            for name in ("index.html", *STATIC_FILES)}

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError):
        return _error(metrics, error.status, error.kind, str(error))

    @app.exception_handler(Lenet5Error)
    async def model_failed(request: Request, error: Lenet5Error):  # e.g. outputs that are not finite
        return _error(metrics, 500, "model_error", str(error))

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, error: BodyTooLarge):
        return _closing(_error(metrics, 413, "too_large", f"the request body is larger than {max_body:,} bytes"))

    @app.exception_handler(BodyTooSlow)
    async def too_slow(request: Request, error: BodyTooSlow):
        return _closing(_error(metrics, 408, "timeout", f"the request body did not arrive whole within "
                                                        f"{request_timeout:g} s"))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}" for problem in error.errors())
        return _error(metrics, 422, "bad_parameter", problems)

    @app.exception_handler(HTTPException)
    async def framework_error(request: Request, error: HTTPException):
        kinds = {404: "not_found", 405: "method_not_allowed"}
        return _error(metrics, error.status_code, kinds.get(error.status_code, "bad_request"), str(error.detail))

    @app.exception_handler(Exception)
    async def failure(request: Request, error: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(metrics, 500, "internal", f"internal error ({type(error).__name__}); the service goes on")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page["index.html"])

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        if name not in STATIC_FILES:
            raise RequestError(404, "not_found", f"no static file {name!r}; there are {', '.join(STATIC_FILES)}")
        return Response(page[name], media_type=STATIC_FILES[name])

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_BODY},
              summary="Classify one image or a batch",
              description="A raw image body (PNG, JPEG) with its Content-Type; multipart fields named "
                          "`image` (several make a batch); or JSON `{\"pixels\": 28×28}` or "
                          "`{\"batch\": [{\"pixels\": ...}, ...]}`. `features=1` adds the C1 and C3 "
                          "feature maps of each image.")
    async def predict(request: Request, features: bool = False):
        with model.on_its_way():
            items, is_batch = await _read_items(request)
            request.state.batch_size = len(items)
            # JSON pixels decode nothing: they never queue behind images being decoded
            files = any(item.file is not None for item in items)
            async with decoding if files else contextlib.nullcontext():
                digits = await run_in_threadpool(_digits, items)
            probabilities = await model.probabilities(np.stack([digit.pixels for digit in digits]))
        answers = [_prediction(digit, row, model.class_names) for digit, row in zip(digits, probabilities)]
        if features:
            for answer, digit in zip(answers, digits):
                answer["features"] = await model.features(digit.pixels)
        return JSONResponse({"predictions": answers, "count": len(answers)} if is_batch else answers[0])

    @app.get("/model", summary="The model: architecture, parameter count, test metrics")
    async def model_info():
        return JSONResponse(json.loads(json.dumps(classifier.info(), default=_plain)))

    @app.get("/healthz", summary="Liveness: answers while the service runs")
    async def healthz():
        return {"status": "ok", "model": classifier.name}

    @app.get("/metrics", summary="Prometheus metrics (text format 0.0.4)")
    async def prometheus():
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs():
        return HTMLResponse(docs_html(app.openapi()))

    app.add_middleware(Gate, metrics=metrics, max_body=max_body, request_timeout=request_timeout,
                       paths={route.path for route in app.routes})
    return app


class _ModelRunner:
    """The one way requests reach the model: through the micro-batcher, or (without batching)
    one at a time under a lock, since the reference layers keep per-call caches."""

    def __init__(self, classifier, metrics: Metrics, *, batching: bool, max_batch: int, max_wait: float,
                 forward=None):
        self.classifier = classifier
        self._forward = forward or classifier.probabilities
        self.class_names = list(classifier.class_names)
        self.metrics = metrics
        self.waiting = 0  # requests between their arrival and their probabilities
        self.batcher = MicroBatcher(self._forward, max_batch=max_batch, max_wait=max_wait,
                                    on_batch=metrics.record_batch, coming=lambda: self.waiting) if batching else None
        self._lock = asyncio.Lock()

    @contextlib.contextmanager
    def on_its_way(self):
        """Marks a request as coming to the model (from its arrival, while it is read and
        decoded), so that a batch waits for it; only the event loop's thread changes the count."""
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

    async def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        if self.batcher is not None:
            return await asyncio.wrap_future(self.batcher.submit(pixels))
        async with self._lock:
            self.metrics.record_batch(len(pixels))
            return await run_in_threadpool(self._forward, pixels)

    async def features(self, pixels: np.ndarray) -> list[dict]:
        def task():
            return conv_feature_maps(self.classifier.model, model_input(self.classifier, pixels[None]))

        if self.batcher is not None:
            return await asyncio.wrap_future(self.batcher.run(task))
        async with self._lock:
            return await run_in_threadpool(task)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()


def model_input(classifier, pixels: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> the float NCHW array the classifier's model reads."""
    from ..run.preprocessing import preprocess_like

    return preprocess_like(pixels, classifier.metadata)


async def _read_items(request: Request) -> tuple[list[Item], bool]:
    kind = media_type(request.headers.get("content-type"))
    if kind == "multipart/form-data":
        return await _multipart_items(request)
    body = await request.body()
    if kind == "application/json":
        return items_from_json(body)
    if kind.startswith("image/"):
        if not body:
            raise RequestError(400, "empty_body", f"the request body is empty; expected a {kind} image")
        return [Item(file=body)], False
    if not body:
        raise RequestError(400, "empty_body", "the request body is empty; expected an image (PNG, JPEG), "
                                              "multipart `image` fields, or JSON pixels")
    raise RequestError(415, "unsupported_media_type",
                       f"Content-Type {kind or 'missing'!r} is not accepted; send image/png, image/jpeg, "
                       f"multipart/form-data with `image` fields, or application/json")


async def _multipart_items(request: Request) -> tuple[list[Item], bool]:
    try:
        form = await request.form(max_files=MAX_IMAGES + 1, max_fields=MAX_IMAGES + 1,
                                  max_part_size=MAX_BODY_BYTES)  # the whole body is bounded by Gate
    except HTTPException as error:  # the multipart parser's own complaint, e.g. no boundary
        raise RequestError(400, "malformed_multipart", f"the multipart body cannot be parsed ({error.detail})") \
            from None
    try:
        files = form.getlist("image")
        if not files:
            raise RequestError(400, "empty_body", f"the multipart body has no `image` field (found fields: "
                                                  f"{', '.join(sorted(set(form.keys()))[:5]) or 'none'})")
        if len(files) > MAX_IMAGES:
            raise RequestError(413, "too_many_images", f"{len(files)} images; at most {MAX_IMAGES} per request")
        items = []
        for number, upload in enumerate(files, 1):
            if isinstance(upload, str):
                raise RequestError(422, "bad_image", f"image #{number}: the `image` field is text, expected a file")
            data = await upload.read()
            if not data:
                raise RequestError(400, "empty_body", f"image #{number} ({upload.filename!r}) is empty")
            items.append(Item(file=data, name=f"image #{number} ({upload.filename})"))
        return items, len(items) > 1
    finally:
        await form.close()


def _digits(items: list[Item]):
    from ..image import ImageError, prepare_digit

    check_image_headers(items)  # all of them, before any is decoded
    digits = []
    for item in items:
        if item.pixels is not None:  # MNIST-like already: kept as sent, only judged
            digits.append(prepare_digit(item.pixels))
            continue
        try:
            digits.append(prepare_digit(item.file))
        except ImageError as error:
            raise RequestError(422, "bad_image", f"{item.name}: not a readable image of a digit "
                                                 f"({_without_source(str(error))})") from None
    return digits


def _without_source(message: str) -> str:
    """An ImageError's message without the leading name the image module gives its input."""
    head, separator, rest = message.partition(": ")
    return rest if separator and len(head) < 40 else message


def _prediction(digit, probabilities: np.ndarray, class_names: list[str]) -> dict:
    order = ranked(probabilities)
    label = int(order[0])
    return {
        "label": label,
        "class_name": class_names[label],
        "probabilities": [float(p) for p in probabilities],
        "top": [{"label": int(i), "probability": float(probabilities[i])} for i in order],
        "input": digit.pixels.tolist(),
        "verdict": digit.verdict,
        "confidence": round(float(digit.confidence), CONFIDENCE_DIGITS),
    }


def _error(metrics: Metrics, status: int, kind: str, message: str) -> JSONResponse:
    metrics.record_error(kind)
    return JSONResponse({"error": {"kind": kind, "message": " ".join(message.split())[:1000]}}, status_code=status)


def _closing(response: Response) -> Response:
    """`response`, closing the connection after it: what is left of an unread body would
    otherwise be read and thrown away on a connection kept alive."""
    response.headers["connection"] = "close"
    return response


def _plain(value):
    """JSON for what `Classifier.info()` may hold: NumPy scalars and arrays, tuples, paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _version() -> str:
    from .. import __version__

    return __version__


class Gate:
    """ASGI middleware: the body's size limit and deadline, the metrics and the log line of
    every request.

    Plain ASGI rather than an HTTP middleware, so that a body announced too large is refused
    before a byte of it is read, and one that grows too large or arrives too slowly is cut
    off as it arrives.
    """

    def __init__(self, app, metrics: Metrics, max_body: int, request_timeout: float, paths: set[str]):
        self.app, self.metrics, self.max_body, self.paths = app, metrics, max_body, paths
        self.request_timeout = request_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        scope.setdefault("state", {})
        status = 500
        received = 0
        deadline = time.monotonic() + self.request_timeout
        whole = False

        async def limited_receive():
            nonlocal received, whole
            if whole:  # after the body only a disconnect can come, whenever it comes
                return await receive()
            try:  # a body sent one byte at a time, or a chunk announced and never sent
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise BodyTooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if received > self.max_body:
                    raise BodyTooLarge
            return message

        async def recording_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                kind, detail = ("too_large", f"the request body of {int(length):,} bytes is larger than "
                                             f"{self.max_body:,} bytes") if length.isdigit() else \
                    ("bad_request", "the Content-Length header is not a number")
                response = _closing(_error(self.metrics, 413 if length.isdigit() else 400, kind, detail))
                await response(scope, receive, recording_send)
            else:
                await self.app(scope, limited_receive, recording_send)
        except ClientDisconnect:  # the client left mid-upload: nobody to answer, nothing went wrong here
            status = 499
            self.metrics.record_error("client_disconnected")
        finally:
            seconds = time.perf_counter() - start
            # The route's path (a body refused at the gate never reached a route); never what a
            # client typed for a route that does not exist, which would grow the label set.
            route_path = getattr(scope.get("route"), "path", None)
            path = route_path or (scope["path"] if scope["path"] in self.paths else "unmatched")
            self.metrics.record_request(scope["method"], path, status, seconds)
            log_request(log, {"method": scope["method"][:20], "path": scope["path"][:200], "status": status,
                              "ms": round(seconds * 1000, 2), "batch": scope["state"].get("batch_size")})
