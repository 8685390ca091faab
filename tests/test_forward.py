from lens_focus.fast import attention_path
from lens_focus.forward import BATCH_BYTES, batch_budget, plan_batches, token_bytes
from lens_focus.model import model_info


def test_plan_batches_bounds_attention_cells_and_keeps_every_index():
    lengths = [3000, 10, 500, 12, 2900, 11, 499]
    batches = plan_batches(lengths, batch_size=3, max_cells=1_000_000, chunk=10_000)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * width * width <= 1_000_000
        assert len(b) <= 3
    assert [1, 5, 3] in batches  # short sequences share a batch
    assert [0] in batches and [4] in batches  # long ones go alone
    # chunking shrinks each sequence's share, so more fit per batch
    assert len(plan_batches(lengths, batch_size=3, max_cells=1_000_000, chunk=100)) < len(batches)


def test_the_fast_path_plans_linear_in_tokens(llama):
    with attention_path(llama, "eager"):
        eager = batch_budget(llama)
    with attention_path(llama, "fast"):
        fast = batch_budget(llama)
    assert fast == (BATCH_BYTES // token_bytes(llama), 1)
    info = model_info(llama)
    assert token_bytes(llama) == 4 * (info.n_layers * 2 * info.n_kv_heads * info.d_head + 4 * llama.cfg.d_model + 3 * llama.cfg.d_mlp)
    lengths = [2048] * 64 + [8192] * 8
    old, new = (plan_batches(lengths, batch_size=64, max_cells=c, chunk=k) for c, k in (eager, fast))
    # eager: 1,024-row chunks of float32 patterns per head; fast: batch × T tokens, however long the prompts
    assert max(len(b) for b in old if lengths[b[0]] == 2048) == eager[0] // (1024 * 2048)
    per_batch = fast[0]
    for b in new:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= per_batch
    assert len(new) < len(old) and max(len(b) for b in new if lengths[b[0]] == 8192) == min(8, per_batch // 8192)
