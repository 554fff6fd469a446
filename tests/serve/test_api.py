"""The service's routes through FastAPI's test client: answers, batches, features, metrics, logs."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest

from .conftest import QUIET_CLIENT, digit_pixels, png_bytes

pytestmark = QUIET_CLIENT


def expected(classifier, image) -> dict:
    prediction = classifier.predict(image)
    return {"label": prediction.label, "probabilities": prediction.probabilities,
            "input": prediction.digit.pixels, "verdict": prediction.digit.verdict}


def assert_answer(answer: dict, truth: dict) -> None:
    assert answer["label"] == truth["label"]
    np.testing.assert_allclose(answer["probabilities"], truth["probabilities"], atol=2e-6)
    assert np.array_equal(np.array(answer["input"], np.uint8), truth["input"])
    assert answer["verdict"] == truth["verdict"]
    ranked = [entry["label"] for entry in answer["top"]]
    assert ranked == list(np.argsort(truth["probabilities"])[::-1][:3])
    assert ranked[0] == answer["label"]


@pytest.mark.parametrize("content_type,format", [("image/png", "PNG"), ("image/jpeg", "JPEG")])
def test_a_raw_image_body_gets_the_classifiers_answer(client, classifier, content_type, format):
    data = png_bytes(digit_pixels(1), format=format)
    response = client.post("/predict", content=data, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_answer(answer, expected(classifier, data))
    assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-4
    assert np.array(answer["input"]).shape == (28, 28)
    assert answer["verdict"] == "one digit" and 0 <= answer["confidence"] <= 1


def test_json_pixels_are_used_as_sent(client, classifier):
    pixels = digit_pixels(2)
    answer = client.post("/predict", json={"pixels": pixels.tolist()}).json()
    assert_answer(answer, expected(classifier, pixels))
    assert np.array_equal(np.array(answer["input"]), pixels)  # MNIST-like input is not re-centred


def test_json_batch_answers_each_image_in_order(client, classifier):
    images = [digit_pixels(seed) for seed in range(5)]
    response = client.post("/predict", json={"batch": [{"pixels": image.tolist()} for image in images]})
    body = response.json()
    assert response.status_code == 200 and body["count"] == 5
    for answer, image in zip(body["predictions"], images):
        assert_answer(answer, expected(classifier, image))


def test_multipart_one_image_answers_it_and_several_make_a_batch(client, classifier):
    files = [png_bytes(digit_pixels(seed)) for seed in (3, 4, 5)]
    single = client.post("/predict", files={"image": ("one.png", files[0], "image/png")}).json()
    assert_answer(single, expected(classifier, files[0]))
    batch = client.post("/predict", files=[("image", (f"{i}.png", data, "image/png")) for i, data in enumerate(files)])
    assert batch.status_code == 200, batch.text
    assert [a["label"] for a in batch.json()["predictions"]] == [expected(classifier, f)["label"] for f in files]


def test_features_are_the_first_two_convolutions_outputs(client, classifier):
    from lenet5.nn import Conv2D
    from lenet5.run.preprocessing import preprocess_like

    pixels = digit_pixels(6)
    answer = client.post("/predict?features=1", json={"pixels": pixels.tolist()}).json()
    c1, c3 = answer["features"]
    assert (c1["title"], c1["shape"], len(c1["maps"])) == ("C1", [6, 28, 28], 6)
    assert (c3["title"], c3["shape"], len(c3["maps"])) == ("C3", [16, 10, 10], 16)
    # C1 recomputed here: the first Conv2D on the model's own preprocessing of the input
    conv1 = next(layer for layer in classifier.model.layers if isinstance(layer, Conv2D))
    assert c1["layer"] == classifier.model.layer_names[classifier.model.layers.index(conv1)]
    maps = conv1.forward(preprocess_like(pixels[None], classifier.metadata))[0]
    for sent, truth in zip(c1["maps"], maps):
        assert sent["min"] == pytest.approx(truth.min(), abs=1e-5)
        assert sent["max"] == pytest.approx(truth.max(), abs=1e-5)
        scaled = np.rint((truth - truth.min()) * 255 / (truth.max() - truth.min()))
        assert np.abs(np.array(sent["pixels"]) - scaled).max() <= 1
    assert "features" not in client.post("/predict", json={"pixels": pixels.tolist()}).json()


def test_model_healthz_and_the_page(client, classifier):
    info = client.get("/model").json()
    assert info["parameters"] == classifier.model.num_parameters() == 61932
    assert info["metrics"]["test_accuracy"] == 0.1 and info["name"] == "lenet5"
    assert any(line.startswith("Conv2D") for line in info["architecture"])
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="pad"' in page.text
    for name, kind in (("page.js", "javascript"), ("page.css", "css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    assert client.get("/static/../app.py").status_code == 404


def test_the_page_and_docs_load_nothing_from_elsewhere(client):
    texts = [client.get(path).text for path in ("/", "/static/page.js", "/static/page.css", "/docs")]
    for text in texts:
        # every src/href is a path on this server: no CDN, no font service, no external script
        links = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', text) + re.findall(r"url\(([^)]+)\)", text)
        assert all(link.startswith("/") for link in links), links
    docs = texts[-1]
    assert "/predict" in docs and "multipart/form-data" in docs and "<script" not in docs
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/model", "/healthz", "/metrics"} <= set(schema["paths"])
    assert "image/png" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]


def test_metrics_count_requests_latency_errors_and_batches(client):
    pixels = digit_pixels(7).tolist()
    for _ in range(3):
        client.post("/predict", json={"pixels": pixels})
    client.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert client.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in text.splitlines() if line and not line.startswith("#")}
    assert values['lenet5_requests_total{method="POST",path="/predict",status="200"}'] == 3
    assert values['lenet5_requests_total{method="POST",path="/predict",status="400"}'] == 1
    assert values['lenet5_requests_total{method="GET",path="unmatched",status="404"}'] == 1
    assert values['lenet5_errors_total{kind="malformed_json"}'] == 1
    assert values['lenet5_errors_total{kind="not_found"}'] == 1
    assert values['lenet5_request_duration_seconds_bucket{le="+Inf"}'] == values["lenet5_request_duration_seconds_count"] == 5
    buckets = [v for k, v in values.items() if k.startswith("lenet5_request_duration_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative
    assert values["lenet5_batch_size_count"] == 3 and values["lenet5_batch_size_sum"] == 3


def test_one_json_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="lenet5.serve"):
        client.post("/predict", json={"batch": [{"pixels": digit_pixels(s).tolist()} for s in range(4)]})
        client.get("/healthz")
        client.post("/predict", content=b"", headers={"Content-Type": "image/png"})
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "lenet5.serve"]
    assert [(l["method"], l["path"], l["status"], l["batch"]) for l in lines] == [
        ("POST", "/predict", 200, 4), ("GET", "/healthz", 200, None), ("POST", "/predict", 400, None)]
    assert all(isinstance(line["ms"], float) and line["ms"] >= 0 for line in lines)


def test_without_batching_the_answers_are_the_same(classifier):
    from fastapi.testclient import TestClient

    from lenet5.serve.app import create_app

    images = [digit_pixels(seed).tolist() for seed in range(3)]
    answers = []
    for batching in (True, False):
        with TestClient(create_app(classifier, batching=batching)) as client:
            answers.append(client.post("/predict", json={"batch": [{"pixels": p} for p in images]}).json())
    assert answers[0] == answers[1]


def test_invented_methods_and_paths_do_not_grow_the_metrics(client):
    """Every label comes from a fixed set: 300 requests with a new method and a new path each
    leave /metrics with the same lines as 3 of them."""
    def metric_lines() -> set[str]:
        text = client.get("/metrics").text
        return {line.rsplit(" ", 1)[0] for line in text.splitlines()
                if line.startswith("lenet5_requests_total") and 'path="/metrics"' not in line}

    for number in range(3):
        client.request(f"BREW{number}", f"/pot/{number}")
        client.request(f"BREW{number}", "/predict")
    few = metric_lines()
    for number in range(3, 300):
        client.request(f"BREW{number}", f"/pot/{number}")
        client.request(f"BREW{number}", "/predict")
    assert metric_lines() == few
    assert few == {'lenet5_requests_total{method="other",path="unmatched",status="404"}',
                   'lenet5_requests_total{method="other",path="/predict",status="405"}'}
