"""The key-value cache across transformers versions: passed under the model's own keyword, used by
the bridge's eager attention (checked once per model), and a bridge that drops it is refused."""
import inspect

import pytest
import torch

from lens_focus.compat import PROBE, cache_keyword, check_cache, new_cache
from lens_focus.fast import attention_path
from lens_focus.forward import chunked_forward, run


def test_the_cache_goes_under_the_keyword_the_model_declares(llama):
    params = inspect.signature(type(llama.original_model).forward).parameters
    assert cache_keyword(llama) in params
    assert cache_keyword(llama) == ("cache" if "cache" in params else "past_key_values")


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_a_cached_eager_pass_equals_one_pass_and_the_cache_holds_every_position(arch, models):
    model = models[arch]
    ids = torch.tensor([[1, 8, 30, 7, 99, 4, 12, 5, 61, 2, 17]])
    with attention_path(model, "eager"), torch.no_grad():
        whole = model(ids, return_type="logits")[:, -1]
        last, cache = chunked_forward(model, ids, chunk=3)
        assert cache.get_seq_length() == ids.shape[1]
        step, cache = run(model, torch.tensor([[9]]), cache=cache)
        assert cache.get_seq_length() == ids.shape[1] + 1
        again = model(torch.cat([ids, torch.tensor([[9]])], dim=1), return_type="logits")[:, -1]
    torch.testing.assert_close(last, whole, rtol=0, atol=1e-5)
    torch.testing.assert_close(step, again, rtol=0, atol=1e-5)


def test_a_bridge_that_drops_its_cache_is_refused(tiny_dirs):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    path = str(tiny_dirs["llama"])
    bridge = TransformerBridge.boot_transformers(path, device="cpu", dtype=torch.float32, tokenizer=AutoTokenizer.from_pretrained(path))
    bridge.eval()

    def drop(module, args, kwargs):
        return args, {k: v for k, v in kwargs.items() if k not in ("cache", "past_key_values")}

    for module in bridge.modules():
        if hasattr(module, "_update_kv_cache"):
            module.register_forward_pre_hook(drop, with_kwargs=True)
    with pytest.raises(RuntimeError, match=rf"after {PROBE} tokens, layers \[0, 1\] lack their state.*transformers .* transformer_lens"):
        check_cache(bridge)


def test_the_check_runs_once_per_model(llama):
    state = check_cache(llama)
    assert state in ("ok", "mended")
    hooks = sum(len(m._forward_pre_hooks) for m in llama.modules())
    assert check_cache(llama) == state
    assert sum(len(m._forward_pre_hooks) for m in llama.modules()) == hooks
    assert new_cache(llama).get_seq_length() == 0
