"""bench/bench_gpu.py's shapes: a model's configuration and tokenizer without its weights, and a
model in those shapes with weights drawn at random (what a CUDA machine without a package index runs)."""
import importlib.util
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from lens_focus import load_model
from lens_focus.aliases import TOY_DIR

REPO = Path(__file__).resolve().parents[1]


def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "bench" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_model_in_the_shapes_of_another_has_its_shapes_and_tokens_and_new_weights_drawn_under_a_seed(tmp_path):
    b = bench()
    b.export_shapes(["toy"], tmp_path / "shapes")
    exported = tmp_path / "shapes" / "toy"
    assert not list(exported.glob("*.safetensors")) and (exported / "config.json").is_file()

    first, second = (b.random_weights(tmp_path / "shapes", "float32", tmp_path / run) for run in ("a", "b"))
    assert [Path(p).name for p in first] == ["toy"]
    real, drawn, again = (load_file(d / "model.safetensors") for d in (TOY_DIR, Path(first[0]), Path(second[0])))
    assert real.keys() == drawn.keys() and all(real[k].shape == drawn[k].shape for k in real)
    assert all(torch.equal(drawn[k], again[k]) for k in drawn)  # seed 0 both times
    assert any(not torch.equal(real[k], drawn[k]) for k in real if real[k].numel() > 1)  # not the trained weights

    toy, shaped = load_model("toy"), load_model(first[0])
    assert shaped.cfg.n_layers == toy.cfg.n_layers and shaped.cfg.n_heads == toy.cfg.n_heads and shaped.cfg.d_model == toy.cfg.d_model
    text = "Sven lives in Lima."
    assert shaped.tokenizer(text).input_ids == toy.tokenizer(text).input_ids
    assert json.loads((Path(first[0]) / "config.json").read_text())["num_hidden_layers"] == toy.cfg.n_layers
