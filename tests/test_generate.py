import torch

from lens_focus import label, load_examples
from lens_focus.generate import generate


def test_greedy_matches_greedy_by_hand_and_batching_changes_nothing(models, nq_path):
    exs = load_examples(nq_path, limit=2, n_docs=3, gold_positions=[1, 3])
    for arch in ["llama", "gpt2"]:
        model = models[arch]
        prompts = [label(e, model.tokenizer).input_ids for e in exs]
        assert len({len(p) for p in prompts}) > 1
        batched = generate(model, prompts, max_new_tokens=6, stop="eos", batch_size=4, chunk=50, progress=False)
        single = [generate(model, [p], max_new_tokens=6, stop="eos", progress=False)[0] for p in prompts]
        assert batched == single
        for p, g in zip(prompts, single):  # against greedy decoding by hand: one full HF forward per token, no cache
            assert list(g.ids) == greedy_by_hand(model.original_model, p, len(g.ids))


def greedy_by_hand(hf, prompt: list[int], n: int) -> list[int]:
    """``n`` greedy tokens, each the argmax of a full forward over the prompt and the tokens so far.
    (HF ``generate`` is not the reference: its first-step scores differ from its own forward's
    logits by about 5e-3 on these tiny models, on transformers 5.23 and 5.24 alike, enough to flip
    a near tie.)"""
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(n):
            ids.append(int(hf(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt):]


class FakeTokenizer:
    """Decodes ids as letters; id 9 is a line break, id 0 the end of sequence."""

    eos_token_id = 0
    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=False):
        return "".join("\n" if i == 9 else "" if i == 0 else chr(ord("a") + i) for i in ids)


class FakeHF:
    config = None  # a plain DynamicCache

    def forward(self, input_ids, cache=None): ...


class ScriptedModel:
    """Emits a fixed token sequence, whatever the input."""

    def __init__(self, script):
        self.script, self.step, self.tokenizer = script, 0, FakeTokenizer()
        self.original_model = FakeHF()
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.cfg = type("cfg", (), {"n_heads": 1})()

    def parameters(self):
        return iter([self.p])

    def __call__(self, ids, **kw):
        logits = torch.zeros(ids.shape[0], ids.shape[1], 12)
        logits[:, -1, self.script[min(self.step, len(self.script) - 1)]] = 1
        self.step += 1
        return logits


def test_stops_at_line_break_after_text_and_at_eos():
    # a leading line break does not end the answer; the next one does
    g = generate(ScriptedModel([9, 1, 2, 9, 3]), [[1, 2]], max_new_tokens=10, progress=False)[0]
    assert (g.text, g.stopped, g.ids) == ("\nbc", "line", (9, 1, 2, 9))
    g = generate(ScriptedModel([1, 9, 2, 0]), [[1]], max_new_tokens=10, stop="eos", progress=False)[0]
    assert (g.text, g.stopped) == ("b\nc", "eos")
    g = generate(ScriptedModel([1]), [[1]], max_new_tokens=3, progress=False)[0]
    assert (g.text, g.stopped) == ("bbb", "length")
