"""lens_focus: contextual heads and focus directions on TransformerLens.

    model = load_model("toy")
    examples = load_examples("nq-open-oracle.jsonl.gz", limit=10)
    ...
"""
from .answers import Answered, answer_examples, conditions, gold_response_sequences
from .sources import load_examples
from .directions import FocusDirections, train_directions
from .evaluation import evaluate_tasks, group_by_length, parse_settings
from .explorer import Explorer, explore
from .fast import attention_path, fast_model, set_attention
from .generate import generate
from .heads import Head, load_heads, random_heads, rank_heads, save_heads, top_heads
from .hooks import add_hooks, hooked
from .interventions import compensation, focus, focusing, split_softmax
from .labels import Example, LabeledSequence, Segment, label
from .metrics import best_subspan_em
from .model import ModelInfo, load_model, model_info
from .scoring import score_heads
from .tasks import TASKS, build_task, helmet_task

__all__ = [
    "load_model", "model_info", "ModelInfo",
    "load_examples", "Example", "Segment", "label", "LabeledSequence",
    "generate", "answer_examples", "Answered", "conditions", "best_subspan_em",
    "score_heads", "Head", "rank_heads", "top_heads", "random_heads", "save_heads", "load_heads",
    "split_softmax", "compensation", "focus", "focusing",
    "FocusDirections", "gold_response_sequences", "train_directions",
    "add_hooks", "hooked", "fast_model", "set_attention", "attention_path",
    "TASKS", "build_task", "helmet_task", "evaluate_tasks", "group_by_length", "parse_settings",
    "explore", "Explorer",
]
