import pytest
import torch

from lens_focus.hooks import add_hooks, attn_hook_name, hooked


def test_hooks_fire_are_honoured_and_are_removed(llama):
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        base = llama(ids)
        fired = []

        def zero_pattern(p, *, hook):
            fired.append(hook.name)
            return torch.zeros_like(p)

        with hooked(llama, [(attn_hook_name(0, "hook_pattern"), zero_pattern)]) as h:
            changed = llama(ids)
            assert len(h) == 1
        assert fired and not torch.allclose(changed, base)
        assert torch.equal(llama(ids), base)
    assert all(not p.fwd_hooks for p in llama.hook_dict.values())


def test_removed_on_exception_and_users_hooks_survive(llama):
    point = llama.hook_dict[attn_hook_name(1, "hook_q")]
    user = point.add_hook(lambda t, *, hook: None)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with hooked(llama, [(attn_hook_name(1, "hook_q"), lambda t, *, hook: None)]):
                assert len(point.fwd_hooks) == 2
                raise RuntimeError("boom")
        assert point.fwd_hooks == [user]
    finally:
        user.hook.remove()
        point.fwd_hooks.remove(user)


def test_unknown_hook_name_raises_and_registers_nothing(models):
    gpt2 = models["gpt2"]
    with pytest.raises(KeyError, match="no hook point 'blocks.0.attn.hook_rot_q'"):
        add_hooks(gpt2, [(attn_hook_name(0, "hook_q"), lambda t, *, hook: None), (attn_hook_name(0, "hook_rot_q"), lambda t, *, hook: None)])
    assert all(not p.fwd_hooks for p in gpt2.hook_dict.values())
