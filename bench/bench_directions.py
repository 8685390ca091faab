"""Focus-direction training: lens_focus's cached-activation trainer against a reference-style
trainer, same data, same initialisation, same steps, side by side on SmolLM2-135M-Instruct.

    python bench/bench_directions.py [--model smollm2] [--limit 4] [--n-docs 10] [--epochs 2]

  cached     lens_focus.directions.train_directions: post-rotary Q and K cached once per sequence;
             a step scores only the response rows against the cached keys
  reference  the way a reference implementation trains: the hidden states entering each attention
             layer are cached once; every step recomputes each layer's queries, keys, rotation and
             full causal attention pattern (all rows) with the directions added, then takes the
             relevant score of the response rows
Both train d_Q and d_K of every head (post-rotary, AdamW, loss −S_C, one sequence per step, the
same seeded order). Prints seconds for caching and for training, the speed-up, and the largest
difference between the two trainers' relevant scores per head after training (target: < 1e-3).
"""
from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import torch

NQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "lost_in_the_middle" / "nq-open-oracle.jsonl.gz"


def hidden_inputs(hf, seqs):
    """Per sequence: the normalised hidden states entering every attention layer (layer, pos, d_model)."""
    out = []
    for seq in seqs:
        end = seq.rows().stop
        with torch.no_grad():
            hs = hf(torch.tensor([list(seq.input_ids[:end])]), output_hidden_states=True).hidden_states
            out.append(torch.stack([layer.input_layernorm(h[0]) for layer, h in zip(hf.model.layers, hs)]))
    return out


def reference_scores(hf, h, seq, dq, dk, span: str = "relevant"):
    """(layer, head) relevant scores from cached hidden states, recomputing each layer's attention."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    cfg = hf.config
    n_heads, n_kv, d_head = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    n = h.shape[1]
    positions = torch.arange(n)[None]
    cos, sin = hf.model.rotary_emb(h[:1], positions)
    rows = torch.tensor(list(seq.rows()))
    mask = torch.zeros(n, dtype=torch.bool)
    for a, b in seq.token_spans[span]:
        mask[a : min(b, n)] = True
    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    scores = []
    for layer, block in enumerate(hf.model.layers):
        attn = block.self_attn
        q = attn.q_proj(h[layer]).view(n, n_heads, d_head).transpose(0, 1)[None]
        k = attn.k_proj(h[layer]).view(n, n_kv, d_head).transpose(0, 1)[None]
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        q = q + dq[layer][None, :, None]
        k = k + dk[layer][None, :, None]
        logits = (q @ k.transpose(-1, -2)) * d_head**-0.5
        pattern = logits.masked_fill(future, float("-inf")).softmax(-1)  # the full (T × T) pattern
        scores.append((pattern[0][:, rows] * mask).sum(-1).mean(-1))
    return torch.stack(scores)


def reference_train(hf, hidden, seqs, *, epochs, lr, init_std, seed):
    """train_directions' loop, scoring each step from recomputed attention."""
    cfg = hf.config
    shape = (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads)
    gen = torch.Generator().manual_seed(seed)
    dq = (torch.randn(*shape, generator=gen) * init_std).requires_grad_()
    dk = (torch.randn(*shape, generator=gen) * init_std).requires_grad_()
    opt = torch.optim.AdamW([dq, dk], lr=lr)
    order, rng = list(range(len(seqs))), random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(order)
        for i in order:
            loss = -reference_scores(hf, hidden[i], seqs[i], dq, dk).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return dq.detach(), dk.detach()


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--n-docs", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM

    from lens_focus import gold_response_sequences, load_examples, load_model
    from lens_focus.aliases import resolve
    from lens_focus.directions import cache_qk, relevant_scores, train_directions
    from lens_focus.model import model_info

    model = load_model(args.model, device="cpu")
    info = model_info(model)
    examples = load_examples(NQ, limit=args.limit, n_docs=args.n_docs, gold_positions=[1, args.n_docs], split="train")
    seqs, _ = gold_response_sequences(model, examples, max_new_tokens=12, progress=False)
    kw = dict(epochs=args.epochs, lr=args.lr, init_std=0.01, seed=0)

    start = time.perf_counter()
    cache = cache_qk(model, seqs, progress=False)
    cache_s = time.perf_counter() - start
    start = time.perf_counter()
    trained = train_directions(model, seqs, progress=False, **kw)  # caches again, then trains
    cached_total = time.perf_counter() - start

    hf = AutoModelForCausalLM.from_pretrained(resolve(args.model), dtype=torch.float32, attn_implementation="sdpa").eval()
    hf.requires_grad_(False)  # only the directions are trained
    start = time.perf_counter()
    hidden = hidden_inputs(hf, seqs)
    hidden_s = time.perf_counter() - start
    start = time.perf_counter()
    ref_q, ref_k = reference_train(hf, hidden, seqs, **kw)
    ref_train_s = time.perf_counter() - start

    def per_head(dq, dk):
        with torch.no_grad():
            return torch.stack([relevant_scores(c, dq, dk, site="post_rotary", group=info.group_size) for c in cache]).mean(0)

    ours, theirs = per_head(trained.q, trained.k), per_head(ref_q, ref_k)
    with torch.no_grad():  # the reference's own computation agrees with the cached one on the same directions
        direct = torch.stack([reference_scores(hf, h, s, ref_q, ref_k) for h, s in zip(hidden, seqs)]).mean(0)
    train_s = cached_total - cache_s
    tokens = [len(s) for s in seqs]
    print(f"{len(seqs)} sequences of {min(tokens)}-{max(tokens)} tokens, {args.epochs} epochs, {info.n_total_heads} heads")
    print(f"{'trainer':>10} {'cache s':>8} {'train s':>8} {'s/step':>8}")
    steps = len(seqs) * args.epochs
    print(f"{'cached':>10} {cache_s:>8.2f} {train_s:>8.2f} {train_s / steps:>8.3f}")
    print(f"{'reference':>10} {hidden_s:>8.2f} {ref_train_s:>8.2f} {ref_train_s / steps:>8.3f}")
    print(f"training speed-up: {ref_train_s / train_s:.1f}x; end to end (cache + train): {(hidden_s + ref_train_s) / cached_total:.1f}x")
    print(f"relevant score per head after training: max |cached - reference| = {(ours - theirs).abs().max():.2e}")
    print(f"reference directions scored both ways: max difference = {(theirs - direct).abs().max():.2e}")
    print(f"mean relevant score: init {trained.meta['relevant_score_at_init']:.4f}, cached {ours.mean():.4f}, reference {theirs.mean():.4f}")


if __name__ == "__main__":
    main()
