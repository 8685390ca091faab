"""A model split by a device map (load_model(device_map=...), --device-map): what can be checked on
a machine without several devices is that an explicit map gives the results of no map, and that a
map or budget naming a device this machine lacks stops before anything loads."""
import json

import numpy as np
import pytest
import torch

from lens_focus import FocusDirections, focus, label, load_examples, load_model
from lens_focus.commands.cli import app
from lens_focus.generate import generate
from lens_focus.heads import Head
from lens_focus.model import device_map_of, max_memory_of
from lens_focus.scoring import span_sums


def every_module_on_cpu(n_layers: int) -> dict:
    return {"model.embed_tokens": "cpu", **{f"model.layers.{i}": "cpu" for i in range(n_layers)}, "model.norm": "cpu",
            "model.rotary_emb": "cpu", "lm_head": "cpu"}  # fmt: skip


@pytest.fixture(scope="module")
def mapped(tiny_dirs, tmp_path_factory):
    path = tmp_path_factory.mktemp("maps") / "map.json"
    path.write_text(json.dumps(every_module_on_cpu(2)))
    return load_model(str(tiny_dirs["llama"]), device_map=path)


def test_an_explicit_map_gives_the_results_of_none(llama, mapped, nq_path):
    exs = load_examples(nq_path, limit=2, n_docs=4, gold_positions=[1, 4])
    prompts = [label(e, llama.tokenizer).input_ids for e in exs]
    plain = generate(llama, prompts, max_new_tokens=5, stop="eos", progress=False)
    split = generate(mapped, prompts, max_new_tokens=5, stop="eos", progress=False)
    assert [g.ids for g in plain] == [g.ids for g in split]
    seqs = [label(e, llama.tokenizer, " Wilhelm Röntgen") for e in exs]
    for a, b in zip(span_sums(llama, seqs, progress=False), span_sums(mapped, seqs, progress=False)):
        assert set(a) == set(b)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # a focus direction acts the same way on the split model
    vec = torch.randn(2, 4, 16, generator=torch.Generator().manual_seed(0))
    directions = FocusDirections(q=vec, k=vec, site="post_rotary")
    with focus(llama, directions, [Head(1, 2)], alpha=2.0):
        steered = list(span_sums(llama, seqs, progress=False))
    with focus(mapped, directions, [Head(1, 2)], alpha=2.0):
        steered_split = list(span_sums(mapped, seqs, progress=False))
    assert not np.array_equal(steered[0]["relevant"], next(iter(span_sums(llama, seqs[:1], progress=False)))["relevant"])
    for a, b in zip(steered, steered_split):
        np.testing.assert_array_equal(a["relevant"], b["relevant"])


def test_a_device_this_machine_lacks_stops_before_loading(tmp_path):
    missing = torch.cuda.device_count()  # the first CUDA index this machine does not have
    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"model.embed_tokens": "cpu", "model.layers.0": missing}))
    # the model path does not exist either: the device error comes first, so nothing was loaded
    with pytest.raises(ValueError, match=rf"map.json, module 'model.layers.0': {missing} is not a device of this machine"):
        load_model("no/such/model/dir", device_map=bad)
    with pytest.raises(ValueError, match="not a device"):
        device_map_of({"lm_head": "tpu:0"})
    with pytest.raises(ValueError, match="neither one of auto, balanced, balanced_low_0, sequential nor a JSON file"):
        device_map_of("everywhere")
    with pytest.raises(ValueError, match="not both"):
        load_model("no/such/model/dir", device="cpu", device_map="auto")
    assert max_memory_of("cpu=2GiB") == {"cpu": "2GiB"} and device_map_of("balanced") == "balanced"
    with pytest.raises(ValueError, match=f"max memory: {missing} is not a device of this machine"):
        max_memory_of(f"{missing}=70GiB,cpu=200GiB")
    with pytest.raises(ValueError, match="expected DEVICE=SIZE"):
        max_memory_of("70GiB")


def test_the_command_line_names_the_bad_map(tmp_path, nq_path):
    from typer.testing import CliRunner

    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"model.layers.0": "cuda:99"}))
    result = CliRunner().invoke(app, ["score", "--data", "toy", "--limit", "1", "--device-map", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "'cuda:99' is not a device of this machine" in result.output
    assert not (tmp_path / "o" / "scores.csv").exists()
