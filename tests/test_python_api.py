"""The Python API on the tiny run: `from mmsent import Classifier`, one side alone, the answer's shape,
and explanations whose sentences quote the same figures as the answers beside them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmsent import LABELS
from mmsent.errors import BadInput


def lab_pair(lab: Path, row: int = 1) -> tuple[Path, str]:
    guid = (lab / "test_without_label.txt").read_text().splitlines()[row].split(",")[0]
    return lab / "data" / f"{guid}.jpg", (lab / "data" / f"{guid}.txt").read_text()


@pytest.fixture(scope="module")
def classifier(tiny_run):
    from mmsent import Classifier

    return Classifier.load(tiny_run)


def test_from_mmsent_import_classifier_leaves_import_mmsent_free_of_torch():
    code = (
        "import sys, mmsent; print('torch' in sys.modules); "
        "from mmsent import Classifier; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Clasifier'"):
        import mmsent

        mmsent.Clasifier  # noqa: B018


def test_load_names_the_answering_model_and_lists_the_others(tiny_run, classifier):
    from mmsent import Classifier

    chosen = json.loads((tiny_run / "run.json").read_text())["chosen"]
    assert classifier.answering == chosen
    assert set(classifier.models) == {"linear_probe", "text_only", "image_only", "concat"}
    other = next(name for name in classifier.models if name != chosen)
    picked = Classifier.load(tiny_run, model=other)
    assert picked.answering == other and picked.members == [other]


def test_a_pair_answers_with_every_field_of_the_one_shape(tiny_run, tiny_lab, classifier):
    image, text = lab_pair(tiny_lab)
    answer = classifier.predict(image, text)
    found = answer.to_dict()
    assert found["model"] == classifier.answering and found["inputs"] == ["image", "text"]
    assert (
        found["confidence"] == found["probabilities"][found["label"]] == max(found["probabilities"].values())
    )
    assert found["low_confidence"] is (found["confidence"] < 0.5)
    assert found["margin"] == pytest.approx(found["confidence"] - found["probabilities"][found["runner_up"]])
    assert found["close_call"] is (found["margin"] <= 0.10)
    measured = json.loads((tiny_run / "metrics.json").read_text())["cross_validation"]
    assert found["cv_accuracy"] == pytest.approx(measured[classifier.answering]["accuracy"])
    for name, each in found["per_model"].items():
        assert each["cv_accuracy"] == pytest.approx(measured[name]["accuracy"])
        assert each["label"] == max(each["probabilities"], key=each["probabilities"].get)
    assert found["hardest_class"]["model"] == classifier.answering
    assert json.loads(json.dumps(found)) == found  # plain JSON types throughout


def quoted(answer: dict) -> str:
    return f"{answer['label']} {100 * answer['probabilities'][answer['label']]:.1f}%"


def test_without_each_side_is_the_other_sides_own_model_so_sentences_and_cards_agree(tiny_lab, classifier):
    image, text = lab_pair(tiny_lab)
    answer = classifier.predict(image, text)
    explanation, cards = answer.explanation, answer.per_model
    for side, alone in (("text", "image_only"), ("image", "text_only")):
        without = explanation[f"without_{side}"]
        assert without["model"] == alone and without["method"] == "single-modality model"
        assert without["label"] == cards[alone]["label"]
        assert without["probabilities"] == cards[alone]["probabilities"]
        # ... and it is what the run answers when given the other side alone
        given = {"image": image} if side == "text" else {"text": text}
        assert without["probabilities"] == pytest.approx(classifier.predict(**given).probabilities, abs=1e-6)
    sentences = explanation["sentences"]
    assert sentences[0] == f"Without the text: {quoted(cards['image_only'])} (the image-only model)."
    assert sentences[1] == f"Without the image: {quoted(cards['text_only'])} (the text-only model)."
    text_says, image_says = cards["text_only"]["label"], cards["image_only"]["label"]
    assert sentences[2].startswith(
        f"The text and the image each point to {text_says}"
        if text_says == image_says
        else f"The text alone points to {text_says}, the image alone to {image_says}; together,"
    )
    assert any(s.startswith("A close call: ") for s in sentences) is answer.close_call


def test_a_run_without_single_modality_models_falls_back_to_ablation_and_says_so(tiny_lab, classifier):
    image, text = lab_pair(tiny_lab)
    fused_only = classifier.model.answering_with("concat")
    fused_only.others = [m for m in fused_only.others if m.name not in ("text_only", "image_only")]
    bare = classifier.__class__(
        classifier.run, classifier.cfg, classifier.image_encoder, classifier.text_encoder, fused_only
    )
    answer = bare.predict(image, text)
    ablated = fused_only.explain(bare.encode([image], [text]))[0]
    without = answer.explanation["without_text"]
    assert without["model"] == "concat" and without["method"] == "ablation"
    assert list(without["probabilities"].values()) == pytest.approx(ablated["without_text"])
    assert answer.explanation["sentences"][0] == (
        f"Without the text: {quoted(without)} (concat with an average text in its place; this run has no "
        "image-only model)."
    )


def test_close_call_sentence_names_both_classes(tiny_lab, classifier):
    from mmsent.serve.classifier import explain_in_words

    answer = classifier.predict(*lab_pair(tiny_lab))
    answer.label, answer.probabilities = "positive", dict(zip(LABELS, (0.47, 0.09, 0.44), strict=True))
    assert explain_in_words(answer, {"text": None, "image": None})[-1] == (
        "A close call: positive 47.0% against negative 44.0%, within 10 points."
    )


@pytest.mark.parametrize("side", ["text", "image"])
def test_one_side_alone_is_answered_by_that_sides_model(tiny_lab, classifier, side):
    image, text = lab_pair(tiny_lab)
    given = {"text": text} if side == "text" else {"image": image}
    answer = classifier.predict(**given)
    pair = classifier.predict(image, text)
    name = f"{side}_only"
    assert answer.model == name and answer.inputs == [side] and answer.members == [name]
    assert answer.probabilities == pytest.approx(pair.per_model[name]["probabilities"], abs=1e-6)
    assert answer.cv_accuracy == pair.per_model[name]["cv_accuracy"]
    assert answer.explanation["without_image"] is None and answer.explanation["without_text"] is None
    sentences = answer.explanation["sentences"]
    assert f"the {side}-only model answered (cross-validated accuracy" in sentences[0]
    assert sentences[1:] == ([sentences[-1]] if answer.close_call else [])  # a close call is said last
    assert all(s.startswith("A close call: ") for s in sentences[1:])


def test_a_text_alone_loads_no_image_encoder_until_an_image_comes(tiny_run, tiny_lab, classifier):
    from mmsent import Classifier

    image, text = lab_pair(tiny_lab)
    lazy = Classifier.load(tiny_run, sides=("text",))  # as `mmsent predict --text` alone loads it
    answer = lazy.predict(text=text)
    assert lazy._encoders["image"] is None  # never built for a text alone
    assert answer.probabilities == pytest.approx(classifier.predict(text=text).probabilities, abs=1e-6)
    pair = lazy.predict(image, text)  # an image later: its encoder is built (and checked) then
    assert lazy._encoders["image"] is not None
    assert pair.probabilities == pytest.approx(classifier.predict(image, text).probabilities, abs=1e-6)


def test_a_batch_may_mix_pairs_and_single_sides_and_keeps_its_order(tiny_lab, classifier):
    (image, text), (image2, text2) = lab_pair(tiny_lab, 1), lab_pair(tiny_lab, 2)
    answers = classifier.predict_batch([image, None, image2], [None, text, text2])
    assert [a.inputs for a in answers] == [["image"], ["text"], ["image", "text"]]
    assert answers[2].probabilities == pytest.approx(classifier.predict(image2, text2).probabilities)
    with pytest.raises(BadInput, match=r"neither an image nor a text \(pair 1\)"):
        classifier.predict_batch([image, None], [text, None])
    with pytest.raises(BadInput, match="neither an image nor a text"):
        classifier.predict()


def test_a_side_alone_needs_a_model_for_that_side(tiny_run, tiny_lab, classifier):
    from mmsent import Classifier

    image, text = lab_pair(tiny_lab)
    with pytest.raises(BadInput, match="image_only, reads the other side"):
        Classifier.load(tiny_run, model="image_only").predict(text=text)
    fused_only = classifier.model.answering_with("concat")
    fused_only.others = [m for m in fused_only.others if m.name != "image_only"]
    bare = Classifier(
        classifier.run, classifier.cfg, classifier.image_encoder, classifier.text_encoder, fused_only
    )
    with pytest.raises(BadInput, match="no image-only model"):
        bare.predict(image=image)


@pytest.mark.parametrize(
    ("probabilities", "close", "low"),
    [((0.55, 0.01, 0.44), False, False), ((0.50, 0.09, 0.41), True, False), ((0.40, 0.35, 0.25), True, True)],
)
def test_close_call_is_a_lead_under_10_points(probabilities, close, low):
    from mmsent import Prediction

    answer = Prediction(
        LABELS[0], dict(zip(LABELS, probabilities, strict=True)), "m", ["m"], ["image", "text"]
    )
    assert answer.close_call is close and answer.low_confidence is low
    assert answer.runner_up == max(LABELS[1:], key=answer.probabilities.get)
