"""The embedded toy model: a synthetic multi-document QA task, its word-level tokenizer, the
training recipe, and (in ``checkpoint/``) the shipped model that ``load_model("toy")`` loads."""
