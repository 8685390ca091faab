from lens_focus.fast import attention_path
from lens_focus.forward import MASK_BYTES, batch_budget, plan_batches


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


def test_the_fast_path_plans_by_its_padding_mask(llama):
    with attention_path(llama, "eager"):
        eager = batch_budget(llama)
    with attention_path(llama, "fast"):
        fast = batch_budget(llama)
    lengths = [2048] * 64 + [8192] * 8
    old, new = (plan_batches(lengths, batch_size=64, max_cells=c, chunk=k) for c, k in (eager, fast))
    # eager: 1,024-row chunks of float32 patterns per head; fast: the prompt in one pass, a T × T byte mask per prompt
    assert max(len(b) for b in old if lengths[b[0]] == 2048) == eager[0] // (1024 * 2048)
    assert [len(b) for b in new] == [64] + [MASK_BYTES // 8192**2] * 2 and len(new) < len(old)
    for b in new:
        assert len(b) * max(lengths[i] for i in b) ** 2 <= MASK_BYTES
