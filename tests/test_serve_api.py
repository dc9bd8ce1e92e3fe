"""The HTTP API on the tiny run, through FastAPI's TestClient: answers, limits, errors."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmsent import LABELS
from mmsent.data import decode_text
from mmsent.data.images import open_image
from mmsent.errors import BadInput
from mmsent.serve.app import MAX_BATCH, MAX_IMAGE_BYTES, MAX_TEXT_CHARS, STATIC, STATUS_CODES, create_app
from mmsent.serve.classifier import LOW_CONFIDENCE, Classifier
from test_data_helpers import png_declaring


def jpeg(colour=(220, 60, 40), size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=90)
    return out.getvalue()


GOOD = {"files": {"image": ("sun.jpg", jpeg(), "image/jpeg")}, "data": {"text": "the happy sunny day #win"}}


@pytest.fixture(scope="module")
def classifier(tiny_run) -> Classifier:
    return Classifier.load(tiny_run)


@pytest.fixture(scope="module")
def client(classifier) -> TestClient:
    return TestClient(create_app(classifier))


def assert_answer(answer: dict) -> None:
    assert answer["label"] in LABELS
    assert set(answer["probabilities"]) == set(LABELS)
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get)


def test_predict_answers_label_probabilities_and_every_models_answer(client, classifier):
    response = client.post("/v1/predict", **GOOD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_answer(body)
    assert body["model"] == classifier.answering and body["members"] == classifier.members
    assert set(body["per_model"]) == {"linear_probe", "text_only", "image_only", "concat"}
    for answer in body["per_model"].values():
        assert_answer(answer)
    # without each side: the other side's own model, as its entry in per_model
    for side, alone in (("text", "image_only"), ("image", "text_only")):
        without = body["explanation"][f"without_{side}"]
        assert (
            without["model"] == alone
            and without["probabilities"] == body["per_model"][alone]["probabilities"]
        )
    assert body["explanation"]["sentences"][0].startswith("Without the text: ")


def test_the_answer_says_how_confident_it_is_and_which_class_is_hardest(client, classifier, tiny_run):
    body = client.post("/v1/predict", **GOOD).json()
    probabilities = body["probabilities"]
    top = probabilities[body["label"]]
    assert body["confidence"] == top and LOW_CONFIDENCE == 0.5
    assert body["low_confidence"] is (top < 0.5)
    second = sorted(probabilities.values())[-2]
    assert probabilities[body["runner_up"]] == second
    assert body["margin"] == pytest.approx(top - second)
    assert body["close_call"] is (body["margin"] <= 0.10)
    # The hardest class: the answering model's lowest mean recall over the run's folds.
    measured = json.loads((tiny_run / "metrics.json").read_text())["cross_validation"][classifier.answering]
    recalls = {label: measured[f"{label}_recall"] for label in LABELS}
    hardest = min(recalls, key=recalls.get)
    expected = {
        "label": hardest,
        "recall": recalls[hardest],
        "model": classifier.answering,
        "measured_on": "cross-validation",
    }
    assert body["hardest_class"] == expected
    assert client.get("/health").json()["hardest_class"] == expected
    assert body["cv_accuracy"] == pytest.approx(measured["accuracy"])


@pytest.mark.parametrize("model", ["concat", "text_only"])
def test_another_model_answers_with_its_own_hardest_class_and_labelled_readout(tiny_run, model):
    chosen = Classifier.load(tiny_run, model=model)
    body = TestClient(create_app(chosen)).post("/v1/predict", **GOOD).json()
    assert body["model"] == model and body["members"] == [model]
    assert body["hardest_class"]["model"] == model
    readout = body["explanation"]["readout"]
    kind = {"concat": "input share", "text_only": "single modality"}[model]
    assert readout["model"] == model and readout["kind"] == kind and readout["what"]
    assert isinstance(readout["image_share"], float)  # a plain number for one pair, not [0.46]


@pytest.mark.parametrize("side", ["text", "image"])
def test_one_side_alone_is_answered_by_that_sides_model(client, classifier, side):
    text = {"text": (None, GOOD["data"]["text"])}  # a multipart field without a file
    sent = {"files": text} if side == "text" else {"files": GOOD["files"]}
    response = client.post("/v1/predict", **sent)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == f"{side}_only" and body["inputs"] == [side]
    assert list(body["per_model"]) == [f"{side}_only"]
    pair = client.post("/v1/predict", **GOOD).json()
    for label in LABELS:
        want = pair["per_model"][f"{side}_only"]["probabilities"][label]
        assert body["probabilities"][label] == pytest.approx(want, abs=1e-5)
    assert body["cv_accuracy"] == pair["per_model"][f"{side}_only"]["cv_accuracy"]


def test_neither_side_and_an_empty_text_are_refused(client):
    response = client.post("/v1/predict", files={"other": ("a.txt", b"x", "text/plain")})
    assert response.status_code == 422 and "no image and no text" in response.json()["error"]
    response = client.post("/v1/predict", files=GOOD["files"], data={"text": "  "})
    assert response.status_code == 422 and "text is empty" in response.json()["error"]  # not taken as absent


def test_the_one_answer_schema_holds_for_the_service_the_python_api_and_the_command_line(
    client, classifier, tiny_run, tmp_path, capsys, monkeypatch
):
    """One JSON Schema (schema.Prediction's) for every answer; unknown fields are refused."""
    import io
    import sys

    jsonschema = pytest.importorskip("jsonschema")
    from mmsent.cli.main import main
    from mmsent.serve.schema import LineAnswer, Prediction

    (tmp_path / "sun.jpg").write_bytes(jpeg())
    text = GOOD["data"]["text"]
    served = client.post("/v1/predict", **GOOD).json()
    direct = classifier.predict(tmp_path / "sun.jpg", text).to_dict()
    assert (
        main(["predict", str(tiny_run), "--image", str(tmp_path / "sun.jpg"), "--text", text, "--json"]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    stdin = f'{{"image": "{tmp_path / "sun.jpg"}", "text": "{text}"}}\n{{"text": "{text}", "id": 1}}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    assert main(["predict", str(tiny_run), "--stdin", "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    text_alone = client.post("/v1/predict", files={"text": (None, text)}).json()
    schema, line_schema = Prediction.model_json_schema(), LineAnswer.model_json_schema()
    for answer in (served, direct, printed, text_alone, classifier.predict(text=text).to_dict()):
        jsonschema.validate(answer, schema)
        Prediction.model_validate(answer)
    for line in lines:
        jsonschema.validate(line, line_schema)
    # ... and the same answer through each door
    for other in (direct, printed, {k: v for k, v in lines[0].items() if k != "line"}):
        assert set(other) == set(served) and other["label"] == served["label"]
        assert other["probabilities"] == pytest.approx(served["probabilities"], abs=1e-5)
        assert other["explanation"]["sentences"] == served["explanation"]["sentences"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**served, "head": served["model"]}, schema)  # an old name is refused


def test_predict_equals_the_python_api(client, classifier):
    direct = classifier.predict(jpeg(), GOOD["data"]["text"]).to_dict()
    served = client.post("/v1/predict", **GOOD).json()
    assert served["label"] == direct["label"]
    for label in LABELS:
        assert served["probabilities"][label] == pytest.approx(direct["probabilities"][label], abs=1e-6)


def test_a_large_jpeg_is_decoded_as_the_feature_store_decodes_it(client, classifier, tmp_path):
    # JPEG draft mode: the store decodes big training JPEGs at reduced scale; the server must too.
    path = tmp_path / "big.jpg"
    Image.effect_noise((1200, 900), 60).convert("RGB").save(path, quality=90)
    as_stored = open_image(path, draft_size=classifier.image_encoder.draft_size)
    full = open_image(path)
    assert as_stored.size != full.size  # otherwise this test would prove nothing
    text = "the great day"
    expected = classifier.predict(as_stored, text).probabilities
    served = client.post(
        "/v1/predict", files={"image": ("big.jpg", path.read_bytes(), "image/jpeg")}, data={"text": text}
    ).json()["probabilities"]
    for label in LABELS:
        assert served[label] == pytest.approx(expected[label], abs=1e-6)


def encoded(mode: str, fmt: str, size=(40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    "name, data",
    [
        ("grey.png", encoded("L", "PNG")),
        ("alpha.png", encoded("RGBA", "PNG")),
        ("deep.png", encoded("I;16", "PNG")),
        ("palette.gif", encoded("P", "GIF")),
        ("cmyk.jpg", encoded("CMYK", "JPEG")),
        ("tiny.jpg", encoded("RGB", "JPEG", (1, 1))),
        ("strip.png", encoded("RGB", "PNG", (400, 1))),
        ("photo.webp", encoded("RGB", "WEBP")),
    ],
)
def test_any_decodable_picture_is_classified(client, name, data):
    # Sent as octet-stream, as many clients do: the bytes decide, not the declared type.
    response = client.post(
        "/v1/predict",
        files={"image": (name, data, "application/octet-stream")},
        data={"text": "the day"},
    )
    assert response.status_code == 200, response.text
    assert_answer(response.json())


def test_batch_answers_in_order_and_like_single_requests(client):
    pairs = [
        ((220, 60, 40), "love the sunny day"),
        ((40, 60, 220), "sad rain awful"),
        ((90, 200, 80), "meeting report"),
    ]
    files = [("images", (f"{i}.jpg", jpeg(colour), "image/jpeg")) for i, (colour, _) in enumerate(pairs)]
    response = client.post("/v1/predict/batch", files=files, data={"texts": [text for _, text in pairs]})
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert len(answers) == len(pairs)
    for (colour, text), answer in zip(pairs, answers, strict=True):
        single = client.post(
            "/v1/predict", files={"image": ("x.jpg", jpeg(colour), "image/jpeg")}, data={"text": text}
        )
        for label in LABELS:
            assert answer["probabilities"][label] == pytest.approx(
                single.json()["probabilities"][label], abs=1e-5
            )


def test_health_names_run_models_and_encoders(client, tiny_run):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["run"] == tiny_run.name
    assert set(body["models"]) == {"linear_probe", "text_only", "image_only", "concat"}
    measured = json.loads((tiny_run / "metrics.json").read_text())["cross_validation"]
    assert body["cv_accuracy"] == {name: measured[name]["accuracy"] for name in body["models"]}
    assert body["encoders"]["image"].startswith("hf-resnet:") and body["encoders"]["text"].startswith(
        "hf-text:"
    )
    assert body["limits"]["batch"] == MAX_BATCH


def test_openapi_types_every_answer_and_lists_every_status(client):
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/predict/batch", "/health"} <= set(spec["paths"])
    form = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form
    schemas = spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
            name = ok["$ref"].rsplit("/", 1)[-1]  # a named model, not a bare object
            assert schemas[name]["properties"], (path, method)
    answer = schemas["Prediction"]["properties"]
    assert {"label", "confidence", "low_confidence", "probabilities", "per_model", "explanation"} <= set(
        answer
    )
    errors = spec["paths"]["/v1/predict"]["post"]["responses"]
    assert {"400", "413", "415", "422", "500"} <= set(errors)
    assert errors["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    for code in STATUS_CODES:  # the docs page shows the API's description: every status, explained
        assert f"| {code} | {STATUS_CODES[code]} |" in spec["info"]["description"]


def test_the_api_page_lists_every_status_code():
    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    for code in STATUS_CODES:
        assert f"\n| {code} | " in page, code


def test_docs_are_swagger_ui_served_from_this_server(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "SwaggerUIBundle" in docs.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert "/docs/assets/swagger-ui-bundle.js" in assets and "/docs/assets/swagger-ui.css" in assets
    for asset in assets:
        assert asset.startswith("/"), asset  # nothing from a CDN
        assert client.get(asset).status_code == 200, asset
    assert "validatorUrl" in docs.text  # set to null: no badge fetched from the online validator
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc would load from a CDN: off


def test_page_and_assets_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text
    for asset in sorted(STATIC.iterdir()):
        served = client.get(f"/static/{asset.name}")
        assert served.status_code == 200, asset.name
        # No CDN, font service or any other address outside this server.
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", served.text, re.I), asset.name


@pytest.mark.parametrize("declared", ["image/jpeg", "image/png", "text/plain", "application/octet-stream"])
@pytest.mark.parametrize(
    "data, status",
    [(b"this is not a picture at all", 415), (b"", 422), ("truncated", 422), ("good", 200)],
)
def test_the_bytes_decide_the_status_not_the_declared_content_type(client, declared, data, status):
    data = {"truncated": truncated_jpeg(), "good": jpeg()}.get(data, data)
    response = client.post(
        "/v1/predict", files={"image": ("upload", data, declared)}, data={"text": "the day"}
    )
    assert response.status_code == status, response.text


def truncated_jpeg() -> bytes:
    data = jpeg(size=(200, 200))
    return data[: len(data) // 2]


BAD_SINGLE = {
    "neither image nor text": ({"files": {"caption": (None, "hello")}}, 422, "no image and no text"),
    "empty text": ({"files": {"image": ("a.jpg", jpeg(), "image/jpeg")}, "data": {"text": ""}}, 422, "text"),
    "blank text": (
        {"files": {"image": ("a.jpg", jpeg(), "image/jpeg")}, "data": {"text": "  \n "}},
        422,
        "empty",
    ),
    "text too long": (
        {"files": {"image": ("a.jpg", jpeg(), "image/jpeg")}, "data": {"text": "a" * (MAX_TEXT_CHARS + 1)}},
        422,
        f"{MAX_TEXT_CHARS + 1} characters",
    ),
    "empty image": ({"files": {"image": ("a.jpg", b"", "image/jpeg")}, "data": {"text": "hi"}}, 422, "empty"),
    "not image bytes": (
        {
            "files": {"image": ("a.jpg", b"this is not a picture at all", "image/jpeg")},
            "data": {"text": "hi"},
        },
        415,
        "not an image",
    ),
    "truncated image": (
        {"files": {"image": ("a.jpg", truncated_jpeg(), "image/jpeg")}, "data": {"text": "hi"}},
        422,
        "truncated",
    ),
    "over 10 MB": (
        {
            "files": {
                "image": ("big.jpg", b"\xff\xd8" + b"\0" * (MAX_IMAGE_BYTES + 2 * 1024 * 1024), "image/jpeg")
            },
            "data": {"text": "hi"},
        },
        413,
        "MB limit",
    ),
    "over 40 megapixels": (
        {"files": {"image": ("huge.png", png_declaring(8000, 5001), "image/png")}, "data": {"text": "hi"}},
        413,
        "megapixels",
    ),
    "decompression bomb": (
        {"files": {"image": ("bomb.png", png_declaring(30000, 30000), "image/png")}, "data": {"text": "hi"}},
        413,
        "megapixel",
    ),
    "non-image content type": (
        {"files": {"image": ("a.txt", b"just some words", "text/plain")}, "data": {"text": "hi"}},
        415,
        "text/plain",
    ),
    "image as a plain field": (
        {"files": {"image": (None, "not a file"), "text": (None, "hi")}},
        422,
        "image",
    ),
    "json body": ({"json": {"image": "abc", "text": "hi"}}, 415, "multipart/form-data"),
    "url-encoded form": ({"data": {"text": "hi"}}, 415, "application/x-www-form-urlencoded"),
    "10 MB text field": (
        {"files": {"image": ("a.jpg", jpeg(), "image/jpeg")}, "data": {"text": "a" * (10 * 1024 * 1024)}},
        413,
        "text field 'text' is over 1 MB",
    ),
    "invisible text": (
        {
            "files": {"image": ("a.jpg", jpeg(), "image/jpeg")},
            "data": {"text": "\u200b\u200c\u200d\u2060\ufeff"},
        },
        422,
        "text is empty",
    ),
    "multipart without boundary": (
        {"content": b"x", "headers": {"content-type": "multipart/form-data"}},
        400,
        "boundary",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SINGLE))
def test_bad_single_request_is_a_clear_4xx_and_the_server_goes_on(client, case):
    request, status, fragment = BAD_SINGLE[case]
    response = client.post("/v1/predict", **request)
    assert response.status_code == status, response.text
    assert fragment.lower() in response.json()["error"].lower()
    assert client.post("/v1/predict", **GOOD).status_code == 200


def test_streamed_body_over_the_limit_is_refused_while_it_arrives(client):
    head = (
        b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )

    def chunks():  # no Content-Length: the limit must be counted as the body streams in
        yield head
        for _ in range(MAX_IMAGE_BYTES // (1024 * 1024) + 2):
            yield b"\0" * (1024 * 1024)

    response = client.post(
        "/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 413
    assert "MB limit" in response.json()["error"]
    assert client.post("/v1/predict", **GOOD).status_code == 200


def batch(images: list[bytes], texts: list[str]) -> dict:
    return {
        "files": [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)],
        "data": {"texts": texts},
    }


BAD_BATCH = {
    "empty batch": (
        {"files": {"unrelated": ("a.bin", b"x", "application/octet-stream")}},
        422,
        "empty batch",
    ),
    "unpaired": (batch([jpeg(), jpeg()], ["one"]), 422, "2 images but 1 texts"),
    "too many pairs": (
        batch([jpeg()] * (MAX_BATCH + 1), ["hi"] * (MAX_BATCH + 1)),
        413,
        f"limit is {MAX_BATCH}",
    ),
    "one bad image": (batch([jpeg(), b"garbage", jpeg()], ["a", "b", "c"]), 415, "images[1]"),
    "one empty text": (batch([jpeg(), jpeg()], ["a", " "]), 422, "texts[1]"),
    "one image over 10 MB": (
        batch([b"\xff\xd8" + b"\0" * (MAX_IMAGE_BYTES + 10), jpeg()], ["a", "b"]),
        413,
        "images[0]",
    ),
    "json body": ({"json": {"texts": ["hi"]}}, 415, "multipart"),
    "over 64 MB in all": (
        batch([b"\xff\xd8" + b"\0" * (9 * 1024 * 1024)] * 8, ["a"] * 8),
        413,
        "64 MB in all",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BATCH))
def test_bad_batch_is_a_clear_4xx_and_the_server_goes_on(client, case):
    request, status, fragment = BAD_BATCH[case]
    response = client.post("/v1/predict/batch", **request)
    assert response.status_code == status, response.text
    assert fragment.lower() in response.json()["error"].lower()
    assert client.post("/v1/predict/batch", **batch([jpeg()], ["fine"])).status_code == 200


def test_batch_with_skip_bad_answers_the_good_pairs_and_lists_the_bad(client):
    images = [jpeg((220, 60, 40)), b"garbage", jpeg((40, 60, 220)), jpeg(), b""]
    texts = ["love it", "fine words", " ", "meeting report", "empty picture"]
    request = batch(images, texts)
    request["data"]["skip_bad"] = "true"
    response = client.post("/v1/predict/batch", **request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [entry["index"] for entry in body["skipped"]] == [1, 2, 4]
    reasons = {entry["index"]: entry["error"] for entry in body["skipped"]}
    assert "images[1]" in reasons[1] and "texts[2]" in reasons[2] and "images[4]" in reasons[4]
    assert [p is None for p in body["predictions"]] == [False, True, True, False, True]
    good = client.post("/v1/predict/batch", **batch([images[0], images[3]], [texts[0], texts[3]])).json()
    assert good["skipped"] == []
    kept = [body["predictions"][0], body["predictions"][3]]
    for answer, alone in zip(kept, good["predictions"], strict=True):
        assert answer["label"] == alone["label"]
        for label in LABELS:
            assert answer["probabilities"][label] == pytest.approx(alone["probabilities"][label], abs=1e-5)


def test_batch_with_skip_bad_and_only_bad_pairs_answers_all_null(client):
    request = batch([b"garbage"], ["text"])
    request["data"]["skip_bad"] = "true"
    body = client.post("/v1/predict/batch", **request).json()
    assert body["predictions"] == [None] and body["skipped"][0]["status"] == 415


def test_unknown_route_and_wrong_method_answer_json_errors(client):
    assert client.get("/v1/nothing").json() == {"error": "Not Found"}
    wrong = client.get("/v1/predict")
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_a_bug_in_the_model_is_a_500_with_a_json_error_not_a_crash(classifier):
    class Broken:
        def __getattr__(self, name):
            return getattr(classifier, name)

        def predict_batch(self, images, texts):
            raise RuntimeError("boom")

    broken = TestClient(create_app(Broken()), raise_server_exceptions=False)
    response = broken.post("/v1/predict", **GOOD)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (RuntimeError)"}


# Inputs both APIs must refuse alike: (image, text, the input the message names, a fragment of it).
REFUSED = {
    "empty text": (jpeg(), "", "text", "text is empty"),
    "blank text": (jpeg(), " \n\t", "text", "text is empty"),
    "invisible text": (jpeg(), "\u200b \u200c\u200d\u2060\ufeff", "text", "text is empty"),
    "text with NUL": (jpeg(), "a\x00b", "text", "NUL"),
    "text too long": (jpeg(), "a" * (MAX_TEXT_CHARS + 1), "text", f"limit is {MAX_TEXT_CHARS}"),
    "not an image": (b"plain words, no picture", "hello", "image", "not an image"),
    "truncated image": (truncated_jpeg(), "hello", "image", "truncated"),
    "empty image": (b"", "hello", "image", "image is empty"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_python_api_and_service_refuse_the_same_inputs_with_the_same_message(client, classifier, case):
    image, text, named, fragment = REFUSED[case]
    with pytest.raises(BadInput) as refused:
        classifier.predict(image, text)
    message = str(refused.value)
    assert fragment in message and named in message
    served = client.post("/v1/predict", files={"image": ("x.jpg", image, "image/jpeg")}, data={"text": text})
    assert 400 <= served.status_code < 500
    assert message in served.json()["error"]


def test_python_batch_names_the_bad_pair_as_the_service_does(client, classifier):
    with pytest.raises(BadInput, match=r"texts\[1\] is empty"):
        classifier.predict_batch([jpeg(), jpeg()], ["fine", " "])
    with pytest.raises(BadInput, match=r"images\[0\]"):
        classifier.predict_batch([b"garbage", jpeg()], ["fine", "also fine"])
    served = client.post("/v1/predict/batch", **batch([jpeg(), jpeg()], ["fine", " "]))
    assert "texts[1] is empty" in served.json()["error"]
    assert classifier.predict_batch([], []) == []


def test_python_api_answers_one_pair_in_plain_scalars(classifier):
    answer = classifier.predict(jpeg(), "the happy sunny day")
    assert classifier.labels == LABELS
    assert all(type(p) is float for p in answer.probabilities.values())
    assert answer.confidence == answer.probabilities[answer.label]
    assert answer.low_confidence is (answer.confidence < LOW_CONFIDENCE)
    for side in ("text", "image"):
        without = answer.explanation[f"without_{side}"]
        assert all(type(p) is float for p in without["probabilities"].values()), (side, without)
    for key, value in (answer.explanation.get("readout") or {}).items():
        assert not (isinstance(value, list) and len(value) == 1), (key, value)
    assert json.loads(json.dumps(answer.to_dict())) == answer.to_dict()


@pytest.mark.parametrize(
    "text, codec",
    [("今天很开心 #happy", "gb18030"), ("naïve café, très bien", "cp1252"), ("sunny ☀", "utf-8")],
)
def test_text_bytes_are_read_as_the_cli_reads_a_text_file(client, classifier, text, codec):
    raw = text.encode(codec)
    assert decode_text(raw, "--text-file")[0] == text  # what `mmsent predict --text-file` would read
    single = client.post("/v1/predict", files={"image": ("a.jpg", jpeg(), "image/jpeg"), "text": (None, raw)})
    assert single.status_code == 200, single.text
    expected = classifier.predict(jpeg(), text).probabilities
    assert single.json()["probabilities"] == pytest.approx(expected, abs=1e-5)
    batch = client.post(
        "/v1/predict/batch",
        files=[("images", ("a.jpg", jpeg(), "image/jpeg")), ("texts", (None, raw))],
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["predictions"][0]["probabilities"] == pytest.approx(expected, abs=1e-5)


def test_openapi_marks_required_fields_binary_images_and_named_probabilities(client):
    spec = client.get("/openapi.json").json()
    single = spec["paths"]["/v1/predict"]["post"]["requestBody"]
    batch = spec["paths"]["/v1/predict/batch"]["post"]["requestBody"]
    form = single["content"]["multipart/form-data"]["schema"]
    # either side may be sent alone (its single-modality model answers), so neither is required
    assert single["required"] and "required" not in form
    assert "image-only model" in form["properties"]["image"]["description"]
    assert form["properties"]["image"]["type"] == "string"
    assert form["properties"]["image"]["format"] == "binary"
    assert form["properties"]["text"]["type"] == "string"  # a plain string, not `string | null`
    batch_form = batch["content"]["multipart/form-data"]["schema"]
    assert set(batch_form["required"]) == {"images", "texts"}  # skip_bad has a default
    assert batch_form["properties"]["images"]["items"] == {"type": "string", "format": "binary"}
    schemas = spec["components"]["schemas"]
    for model in ("Prediction", "Answer"):
        probabilities = schemas[model]["properties"]["probabilities"]
        named = schemas[probabilities["$ref"].rsplit("/", 1)[-1]]
        assert "additionalProperties" not in named
        assert list(named["properties"]) == list(LABELS)  # positive, neutral, negative
        assert set(named["required"]) == set(LABELS)
        assert all(field["type"] == "number" for field in named["properties"].values())
