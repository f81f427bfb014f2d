"""Hub push errors (no token, bad token, bad repo id, foreign namespace) fail before training, in one clear line;
the Python-API path (write the model and its card into a folder, push it) reaches the stand-in Hub."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import make_sentences
from hub_stand_in import GOOD_TOKEN, StandInHub
from mtl.errors import MtlError, RecipeError
from mtl.publish.hub import HubError, check_push_target
from mtl.recipe import recipe_from_dict


@pytest.fixture
def hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))  # no login cache
    with StandInHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
        yield server


def test_no_token_bad_token_and_foreign_namespace_are_clear(hub, monkeypatch):
    assert check_push_target("tiny") == "tester/tiny"
    with pytest.raises(HubError, match="belongs to 'tester', who cannot write to namespace 'someone'"):
        check_push_target("someone/tiny")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(HubError, match="HTTP 401"):
        check_push_target("team/tiny")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="no Hugging Face token found: set HF_TOKEN or run `hf auth login`"):
        check_push_target("team/tiny")
    assert not any("/repos/create" in path for path in hub.paths())


def test_bad_repo_ids_are_recipe_errors_before_any_request(hub):
    base = {"task": "text-sentiment", "data": {"source": "x.csv"}}
    with pytest.raises(RecipeError, match="hub.repo_id: 'bad repo/na me' is not a valid Hub repository id"):
        recipe_from_dict({**base, "hub": {"push": True, "repo_id": "bad repo/na me"}})
    with pytest.raises(RecipeError, match="hub.repo_id: 'a/b/c' is not a Hub repository id"):
        recipe_from_dict(base, ["hub.push=true", "hub.repo_id=a/b/c"])
    with pytest.raises(RecipeError, match="hub.push is true but no repo_id"):
        recipe_from_dict(base, ["hub.push=true"])
    with pytest.raises(RecipeError, match="label_fractions must be fractions in"):
        recipe_from_dict({**base, "compare": {"label_fractions": [0.1, 1.5]}})
    assert hub.requests == []


def test_cli_checks_the_token_before_loading_data_or_training(hub, monkeypatch, tmp_path, tiny_bert, capsys):
    import yaml

    from mtl.run import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert)},
                                      "data": {"source": str(tmp_path / "not-read-yet.csv")},
                                      "output": {"dir": str(tmp_path / "out")}}))
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert main([str(recipe), "--push-to-hub", "team/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot check the Hugging Face token") and "Traceback" not in err
    assert "hf_wrong" not in err and not (tmp_path / "out").exists()
    assert main([str(recipe), "--push-to-hub", "not a repo"]) == 2
    assert "hub.repo_id: 'not a repo' is not a valid Hub repository id" in capsys.readouterr().err


def test_task_push_to_hub_sends_model_and_card_as_one_commit(hub, tiny_bert, tmp_path):
    """Task.push_to_hub: the model folder and its card, one commit, the repo id completed from the token's user."""
    from huggingface_hub import ModelCard

    from mtl.tasks import TextSentiment

    task = TextSentiment(tiny_bert, max_length=16)
    task.fit(make_sentences(40), epochs=1, batch_size=20)
    url = task.push_to_hub("api-model", private=False)
    assert url.startswith(hub.url) and "tester/api-model/commit/" in url
    (commit,) = hub.commits()
    files = {line["value"]["path"]: line["value"] for line in commit if line["key"] == "file"}
    task.write_model(tmp_path / "local")
    assert set(files) == {p.name for p in (tmp_path / "local").iterdir()} | {"README.md"}
    assert not [name for name, content in hub.pushed()[0].items() if str(tiny_bert).encode() in content]
    card = ModelCard(base64.b64decode(files["README.md"]["content"]).decode())
    assert card.data.pipeline_tag == "text-classification" and card.data.model_name == "api-model"
    assert "## Results on the test split" not in card.text and "## How to use" in card.text
    with pytest.raises(MtlError) as caught:  # from Python, messages name the argument, not the CLI's flag
        task.push_to_hub("not a repo")
    assert str(caught.value).startswith("push_to_hub(repo_id): 'not a repo' is not") and "--" not in str(caught.value)


def test_run_pushes_one_commit_without_checkpoints_hidden_files_or_private_data(hub, tiny_bert, tmp_path):
    """A recipe run with hub.push: one commit of the model, card and reports; no checkpoints/, no hidden files; the
    test predictions (raw test inputs) and files holding absolute local paths stay local unless asked for, and no
    pushed file holds a path of this machine."""
    import pandas as pd

    from mtl.publish.hub import push_folder
    from mtl.runner.run import run_recipe

    pd.DataFrame(make_sentences(60)).to_csv(tmp_path / "reviews.csv", index=False)
    recipe = recipe_from_dict({"task": "text-sentiment", "model": {"checkpoint": str(tiny_bert)},
                               "data": {"source": str(tmp_path / "reviews.csv")}, "preprocess": {"max_length": 16},
                               "train": {"epochs": 1, "batch_size": 20},
                               "output": {"dir": str(tmp_path / "out"), "keep_checkpoints": True},
                               "hub": {"push": True, "repo_id": "team/run-model"}})
    summary = run_recipe(recipe)
    out = tmp_path / "out"
    local = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {".mtl-output", "test_predictions.csv", "recipe.yaml", "metrics.json"} <= local
    assert any(name.startswith("checkpoints/") for name in local)
    (pushed,) = hub.pushed()  # one commit
    assert summary["pushed"].startswith(f"{hub.url}/team/run-model/commit/")
    private = {"test_predictions.csv", "recipe.yaml", "metrics.json"}  # the recipe and metrics name local paths
    public = {name for name in local if not name.startswith(("checkpoints/", "."))} - private
    assert set(pushed) == public and {"README.md", "config.json", "model.safetensors", "tokenizer.json",
                                      "per_class.csv", "confusion_matrix.png", "train_log.jsonl"} <= public
    assert not [name for name, content in pushed.items() if str(tmp_path).encode() in content]
    card = pushed["README.md"].decode()
    assert "source: reviews.csv" in card and f"checkpoint: {tiny_bert.name}" in card and "dir: out" in card
    assert all(r["status"] == 200 for r in hub.requests), hub.paths()

    (out / ".tmp-staging").mkdir()
    (out / ".tmp-staging" / "weights.bin").write_bytes(b"x")
    (out / "checkpoints" / ".hidden").write_text("x")
    push_folder(out, "team/run-model", include_private=True)
    everything = hub.pushed()[1]
    assert set(everything) == public | private  # still no checkpoints/ nor hidden files
    assert str(tmp_path) in everything["recipe.yaml"].decode()  # asked for: pushed as written


def test_private_files_are_the_test_inputs_and_files_naming_local_paths(hub, tmp_path):
    from mtl.publish.hub import holds_absolute_path, private_files, push_folder

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "README.md").write_text("# model\n\nfine-tuned from [openai/whisper-tiny.en](https://huggingface.co/x)\n")
    (folder / "test_predictions.csv").write_text("index,input,label\n0,what a film,positive\n")  # private all the same
    (folder / "train_log.jsonl").write_text(json.dumps({"type": "note", "path": str(tmp_path / "a.wav")}) + "\n")
    (folder / "metrics.json").write_text('{"checkpoint": "openai/whisper-tiny.en", "loss": 0.5}')
    (folder / "recipe.yaml").write_text("data:\n  source: data/clips  # relative\n")
    assert private_files(folder) == ["test_predictions.csv", "train_log.jsonl"]
    push_folder(folder, "tester/m")
    assert set(hub.pushed()[0]) == {"README.md", "metrics.json", "recipe.yaml"}
    for text in ("source: /home/me/data", '"C:\\\\Users\\\\me"', "x ~/data", "0,/srv/a.wav,yes"):
        assert holds_absolute_path(text), text
    for text in ("https://huggingface.co/a/b", "openai/whisper-tiny.en", "km/h and 1/2", "a / b", "dir: outputs/x"):
        assert not holds_absolute_path(text), text


def test_an_unreachable_hub_is_named_as_such_not_as_a_bad_token(monkeypatch):
    """Offline mode or no network (no HTTP answer at all): the message says the Hub cannot be reached."""
    import huggingface_hub

    from mtl.publish.hub import HubError, check_push_target

    def unreachable(self, *args, **kwargs):  # the network edge: what httpx raises without a route to the Hub
        raise ConnectionError("[Errno 101] Network is unreachable")
    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", unreachable)
    with pytest.raises(HubError, match=r"cannot reach the Hugging Face Hub to check the token \(ConnectionError: "
                                       r"\[Errno 101\] Network is unreachable\); pushing needs the Hub") as caught:
        check_push_target("team/x", token="hf_any")
    assert "Create a token" not in str(caught.value)
