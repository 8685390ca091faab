"""lens_focus: contextual heads and focus directions on TransformerLens.

    import lens_focus as lf
    model = lf.load_model("toy")
    examples = lf.load_examples("toy", limit=4)
    answered = lf.answer_examples(model, examples, max_new_tokens=4)
    ...

The names here are what a notebook needs; everything else is in its module (``lf.heads``,
``lf.hooks``, ``lf.fast``, ``lf.metrics``, ``lf.tasks``, ...). Each intervention comes as a pair:
a context manager (:func:`compensation`, :func:`focus`) and the same as an ``Intervention`` for
functions that answer many prompts (:func:`compensation_intervention`, :func:`focus_intervention`).
"""
from .answers import answer_examples, conditions, gold_response_sequences
from .directions import FocusDirections, train_directions
from .evaluation import evaluate_tasks
from .explorer import explore
from .heads import Head, random_heads, rank_heads, top_heads
from .interventions import compensation, compensation_intervention, focus, focus_intervention
from .labels import Example, label
from .model import load_model, model_info
from .scoring import score_heads
from .sources import load_examples
from .tasks import build_task

__all__ = [
    "load_model", "model_info",
    "load_examples", "Example", "label",
    "answer_examples", "conditions", "score_heads", "Head", "rank_heads", "top_heads", "random_heads",
    "compensation", "compensation_intervention", "focus", "focus_intervention",
    "FocusDirections", "gold_response_sequences", "train_directions",
    "build_task", "evaluate_tasks",
    "explore",
]  # fmt: skip
