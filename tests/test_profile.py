"""A model's profile comes from the model, not from the name it was loaded by."""
import json

from typer.testing import CliRunner

from lens_focus import load_model
from lens_focus.aliases import TOY_DIR
from lens_focus.commands.cli import app
from lens_focus.profile import Profile, profile_of, profile_of_checkpoint
from lens_focus.commands.reproduce import kind_of, plan_for


def test_the_toy_is_recognised_by_its_vocabulary_wherever_it_is_loaded_from(tmp_path):
    import shutil

    copy = shutil.copytree(TOY_DIR, tmp_path / "my-toy")
    for where in ("toy", str(TOY_DIR), str(copy)):
        profile = profile_of_checkpoint(where)
        assert profile == Profile(toy_vocabulary=True, n_ctx=1024, chat=False), where
        assert profile.data == "toy" and profile.tasks() == ["toy_needle", "toy_qa"]
    assert profile_of(load_model(str(copy), device="cpu")) == profile_of_checkpoint("toy")
    assert kind_of(profile_of_checkpoint(str(copy)), quick=False) == "toy" and plan_for(profile_of_checkpoint(str(copy))).data == "toy"


def test_a_natural_tokenizer_is_not_the_toy(tiny_dirs, models):
    for arch in ("llama", "qwen2"):
        profile = profile_of(models[arch])
        assert not profile.toy_vocabulary and profile.data == "facts" and profile.task_lengths == (1000, 2000)
        assert profile == profile_of_checkpoint(str(tiny_dirs[arch]))
    assert profile_of(models["qwen2"]).chat and not profile_of(models["llama"]).chat


def test_needle_lengths_stay_within_the_context():
    assert Profile(True, 1024).needle_lengths == (80, 160, 300)
    assert Profile(False, 8192).needle_lengths == (1000, 2000, 4000)
    assert Profile(False, 3000).needle_lengths == (1000, 2000)


def test_retrieval_on_the_toy_loaded_by_path_takes_the_toys_defaults(tmp_path):
    out = tmp_path / "retrieval"
    result = CliRunner().invoke(app, ["retrieval", "--model", str(TOY_DIR), "--depths", "0,100", "--max-new-tokens", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lengths"] == [80, 160, 300] and "(toy vocabulary)" in result.output
