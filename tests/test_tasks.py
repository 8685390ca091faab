import gzip
import json

import pytest

from lens_focus import label
from lens_focus.data import DataError
from lens_focus.data.helmet import helmet_examples
from lens_focus.metrics import best_subspan_em, substring_recall
from lens_focus.profile import Profile
from lens_focus.tasks import TASKS, build_task, helmet_task


def context_tokens(seq) -> int:
    return sum(end - start for d in seq.example.documents for start, end in seq.token_spans[d])


def relevant_texts(seq) -> list[str]:
    return [seq.text[a:b] for a, b in seq.char_spans["relevant"]]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("task", ["mk_needle", "mk_uuid", "mv", "json_kv", "nq"])
def test_every_task_labels_its_relevant_documents_exactly(arch, task, models, nq_path):
    tok = models[arch].tokenizer
    lengths, n = ((3000, 6000) if task == "nq" else (400, 800)), 3  # the tiny tokenizers' 512 tokens make long passages
    examples = build_task(task, tok, lengths=lengths, n=n, nq=nq_path)
    assert len(examples) == len(lengths) * n and len({e.id for e in examples}) == len(examples)
    for length in lengths:
        group = [e for e in examples if e.meta["length"] == length]
        firsts = []
        for ex in group:
            seq = label(ex, tok)
            assert 0.8 * length <= context_tokens(seq) <= length + 8, (ex.id, context_tokens(seq))
            texts = relevant_texts(seq)
            if task == "mv":  # four needles, one value each, all relevant
                assert len(texts) == 4 and all(v in t for v, t in zip(ex.answers, texts))
            elif task == "nq":  # one gold passage; no distractor holds an answer
                assert len(texts) == 1 and texts[0].startswith("Document (Title: ")
            else:
                assert len(texts) == 1 and ex.answers[0] in texts[0]
            if task != "mv":
                others = [seq.text[slice(*seq.char_spans[d][0])] for d in ex.irrelevant_names]
                assert not any(best_subspan_em(o, ex.answers) for o in others)
            assert seq.prompt.endswith(ex.reply_start) and ex.reply_start
            firsts.append(seq.char_spans["relevant"][0][0])
        if task != "mv":  # the asked item moves from the first document to the last
            assert group[0].relevant == "doc_1" and group[-1].relevant == group[-1].documents[-1]
            assert firsts == sorted(firsts)
    again = build_task(task, tok, lengths=lengths, n=n, nq=nq_path)
    assert [e.text for e in again] == [e.text for e in examples]
    other = build_task(task, tok, lengths=lengths, n=n, nq=nq_path, seed=1)
    assert [e.text for e in other] != [e.text for e in examples]


def test_json_kv_from_the_lost_in_the_middle_file(llama, kv_path):
    examples = build_task("json_kv", llama.tokenizer, lengths=[600], n=2, kv=kv_path)
    keys = {}
    with gzip.open(kv_path, "rt") as f:
        for lineno, line in enumerate(f, start=1):
            obj = json.loads(line)
            keys[lineno] = (obj["key"], obj["value"])
    for ex in examples:
        key, value = keys[int(ex.meta["source"].rsplit(":", 1)[1])]
        assert ex.answers == (value,) and json.dumps(key) in ex.text
        assert relevant_texts(label(ex, llama.tokenizer)) == [f"{json.dumps(key)}: {json.dumps(value)}"]
    with pytest.raises(DataError, match=f"{kv_path.name}:\\d+.*short of a context of 20000"):
        build_task("json_kv", llama.tokenizer, lengths=[20000], n=1, kv=kv_path)


def test_toy_tasks_use_toy_vocabulary():
    from lens_focus import load_model

    toy = load_model("toy")
    unk = toy.tokenizer.unk_token_id
    for task in ("toy_needle", "toy_qa"):
        examples = build_task(task, toy.tokenizer, lengths=[80, 160], n=4)
        assert len(examples) == 8
        for ex in examples:
            seq = label(ex, toy.tokenizer)
            assert unk not in seq.input_ids
            assert len(toy.tokenizer(ex.answers[0], add_special_tokens=False).input_ids) == 1
            assert ex.answers[0] in relevant_texts(seq)[0]
            assert abs(context_tokens(seq) - ex.meta["length"]) <= 0.25 * ex.meta["length"]
    toy, natural = Profile(True, 1024), Profile(False, 8192, chat=True)
    assert toy.tasks() == ["toy_needle", "toy_qa"] and toy.tasks(nq="x.jsonl") == ["toy_needle", "toy_qa"]
    assert "nq" not in natural.tasks() and "nq" in natural.tasks(nq="x.jsonl")


def test_bad_task_requests_are_named(llama):
    with pytest.raises(ValueError, match="unknown task 'hotpot'"):
        build_task("hotpot", llama.tokenizer, lengths=[100])
    with pytest.raises(ValueError, match="task nq needs the NQ file"):
        build_task("nq", llama.tokenizer, lengths=[100])
    with pytest.raises(DataError, match="not even one item"):
        build_task("mk_uuid", llama.tokenizer, lengths=[10], n=1)


def test_substring_recall_counts_every_value():
    assert substring_recall("The numbers are 123 and 456.", ["123", "456", "789", "000"]) == 0.5
    assert substring_recall("ABC-def", ["abc-DEF"]) == 1.0
    assert substring_recall("none", ["123"]) == 0.0
    with pytest.raises(ValueError):
        substring_recall("x", [])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_helmet_files_of_each_kind(llama, tmp_path):
    filler = "The hills were green. " * 30
    ruler = write_jsonl(tmp_path / "niah_mv_8192.jsonl", [{
        "context": filler + "One of the special magic numbers for brisk-otter is: 1234567. " + filler
                   + "One of the special magic numbers for brisk-otter is: 7654321. " + filler,
        "query": "brisk-otter", "outputs": ["1234567", "7654321"], "type_needle_v": "numbers", "length": 8192,
    }])  # fmt: skip
    pairs = {f"key-{i}": f"value-{i}" for i in range(20)}
    kv = write_jsonl(tmp_path / "json_kv_8192.jsonl", [{"context": json.dumps(pairs), "question": '"key-7"', "answer": "value-7", "num_kvs": 20}])
    rag = write_jsonl(tmp_path / "kilt_nq_8192.jsonl", [{
        "question": "who wrote the song", "answers": ["Ada Lovelace"],
        "ctxs": [{"title": "A", "text": "Nothing here."}, {"title": "B", "text": "Ada Lovelace wrote it.", "has_answer": True},
                 {"title": "C", "text": "Also nothing."}],
    }])  # fmt: skip
    (mv,) = helmet_examples(ruler)
    seq = label(mv, llama.tokenizer)
    assert mv.meta["task"] == "niah_mv_8192" and mv.meta["category"] == "recall" and mv.meta["metric"] == "recall"
    assert [t.strip() for t in relevant_texts(seq)] == [
        "One of the special magic numbers for brisk-otter is: 1234567.", "One of the special magic numbers for brisk-otter is: 7654321."]
    assert "brisk-otter" in seq.text[slice(*seq.char_spans["question"][0])]
    task, (ex,) = helmet_task(kv)
    assert (task.name, task.category, task.metric) == ("json_kv_8192", "recall", "em")
    assert relevant_texts(label(ex, llama.tokenizer)) == ['"key-7": "value-7"'] and ex.answers == ("value-7",)
    task, (ex,) = helmet_task(rag)
    seq = label(ex, llama.tokenizer)
    assert (task.category, task.metric) == ("rag", "em") and relevant_texts(seq) == ["Document (Title: B): Ada Lovelace wrote it."]
    assert len(seq.char_spans["irrelevant"]) == 2


def test_helmet_bad_records_are_named(tmp_path):
    bad = write_jsonl(tmp_path / "odd.jsonl", [{"prompt": "x"}])
    with pytest.raises(DataError, match="odd.jsonl:1: not a HELMET record"):
        helmet_examples(bad)
    missing = write_jsonl(tmp_path / "mk.jsonl", [{"context": "A b c. D e f.", "query": "k", "outputs": ["999"]}])
    with pytest.raises(DataError, match="mk.jsonl:1: the gold value '999' is not in 'context'"):
        helmet_examples(missing)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl: the file is empty"):
        helmet_examples(empty)


def test_task_table_is_complete():
    assert {t.category for t in TASKS.values()} == {"recall", "rag"}
    assert all(t.metric in ("recall", "em") and t.max_new_tokens > 0 for t in TASKS.values())
    assert TASKS["mv"].grade("1 2", ["1", "2", "3", "4"]) == 0.5 and TASKS["nq"].grade("The Beatles!", ["beatles"]) == 1.0


def test_seeds_take_disjoint_held_out_questions(llama, nq_path, kv_path):
    from lens_focus import load_examples

    train = {e.question_id for e in load_examples(nq_path, split="train", n_docs=1, gold_positions=[1], variants=("gold",))}
    by_seed = [{e.question_id for e in build_task("nq", llama.tokenizer, lengths=[3000], n=3, seed=s, nq=nq_path)} for s in (0, 1)]
    assert len(by_seed[0]) == len(by_seed[1]) == 3 and not by_seed[0] & by_seed[1] and not (by_seed[0] | by_seed[1]) & train
    kv = [{e.meta["source"] for e in build_task("json_kv", llama.tokenizer, lengths=[600], n=2, seed=s, kv=kv_path)} for s in (0, 1)]
    assert len(kv[0] | kv[1]) == 4
