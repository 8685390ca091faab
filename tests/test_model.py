import pytest
import torch

from lens_focus import load_model, model_info

EXPECTED = {  # arch: (kv heads, rotary, chat)
    "llama": (2, True, False),
    "qwen2": (2, True, True),
    "mistral": (2, True, False),
    "gpt2": (4, False, False),
}


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_model_facts(models, arch):
    model = models[arch]
    info = model_info(model)
    kv, rotary, chat = EXPECTED[arch]
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.d_head) == (2, 4, kv, 16)
    assert (info.rotary, info.chat) == (rotary, chat)
    assert info.n_ctx == 8192
    # the fixture really is tiny
    assert sum(p.numel() for p in model.original_model.parameters()) < 1_000_000
    assert ("blocks.0.attn.hook_rot_q" in model.hook_dict) == rotary


def test_kv_head_mapping(models):
    info = model_info(models["llama"])
    assert [info.kv_head(h) for h in range(4)] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="out of range"):
        info.kv_head(4)
    assert [model_info(models["gpt2"]).kv_head(h) for h in range(4)] == [0, 1, 2, 3]


def test_bridge_matches_hf_logits(models):
    model = models["qwen2"]
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.no_grad():
        ours = model(ids)
        ref = model.original_model(ids).logits
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_missing_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        load_model(str(tmp_path / "nope"))


def test_toy_alias_without_checkpoint(monkeypatch, tmp_path):
    import lens_focus.aliases as a
    import lens_focus.model as m

    monkeypatch.setattr(a, "TOY_DIR", tmp_path / "absent")  # where the alias looks
    with pytest.raises(FileNotFoundError, match="toy model is not in this installation"):
        m.resolve_model_name("toy")
    assert m.resolve_model_name("gpt2") == "gpt2"
