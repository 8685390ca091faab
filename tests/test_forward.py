from lens_focus.forward import plan_batches


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
