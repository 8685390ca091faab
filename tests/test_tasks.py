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


def test_helmet_reranking_and_demonstrations(llama, tmp_path):
    def record(qid, query, grades):
        return {"qid": qid, "query": query, "ctxs": [{"id": str(10 + i), "title": f"T{i}", "text": f"passage {qid}-{i}.", "label": g}
                                                     for i, g in enumerate(grades)]}  # fmt: skip

    test = write_jsonl(tmp_path / "msmarco_rerank_psg.jsonl", [record("q1", "what is a lantern", [0, 3, 1, 3])])
    demos = write_jsonl(tmp_path / "msmarco_demo.jsonl", [record("q1", "the same question", [1, 0]), record("q2", "who made a violin", [0, 2]),
                                                          record("q3", "where is Quito", [2, 0])])  # fmt: skip
    task, (ex,) = helmet_task(test)
    seq = label(ex, llama.tokenizer)
    assert (task.category, task.metric) == ("re_rank", "ndcg@10") and ex.meta["qrels"] == {"10": 0, "11": 3, "12": 1, "13": 3}
    assert relevant_texts(seq) == ["[ID: 11] Document (Title: T1): passage q1-1.", "[ID: 13] Document (Title: T3): passage q1-3."]
    assert ex.answers == ("11 > 13 > 12 > 10",) and task.grade("Ranking: 11 > 13 > 12 > 10", ex.answers, ex.meta) == 1.0
    assert 0 < task.grade("10 > 12 > 11", ex.answers, ex.meta) < 1 and "demos" not in seq.char_spans
    # demonstrations: drawn from the demo file, never the question itself, the same ones every time
    task, (ex,) = helmet_task(test, demos=demos, shots=2)
    seq = label(ex, llama.tokenizer)
    (shown,) = [seq.text[a:b] for a, b in seq.char_spans["demos"]]
    assert "Query: who made a violin\nRanking: 11 > 10" in shown and "Query: where is Quito\nRanking: 10 > 11" in shown
    assert "the same question" not in shown and seq.char_spans["demos"][0][1] <= seq.char_spans["doc_1"][0][0]
    assert helmet_task(test, demos=demos, shots=2)[1][0].text == ex.text
    with pytest.raises(DataError, match="2 other questions"):
        helmet_task(test, demos=demos, shots=3)
    with pytest.raises(DataError, match="no demo file"):
        helmet_task(test, shots=1)
    # JSON KV keeps its own demonstrations, before the key asked
    pairs = {f"key-{i}": f"value-{i}" for i in range(10)}
    kv = write_jsonl(tmp_path / "json_kv.jsonl", [{"context": json.dumps(pairs), "question": '"key-3"', "answer": "value-3",
                                                   "demos": [["a-key", "a-value"], ["b-key", "b-value"]]}])  # fmt: skip
    _, (ex,) = helmet_task(kv, shots=2)
    seq = label(ex, llama.tokenizer)
    (shown,) = [seq.text[a:b] for a, b in seq.char_spans["demos"]]
    assert shown == 'Key: "a-key"\nCorresponding value: a-value\n\nKey: "b-key"\nCorresponding value: b-value\n\n'
    assert seq.text.index(shown) + len(shown) == seq.char_spans["question"][0][0]
    # RAG demonstrations in HELMET's form: passages, question, answer
    rag = write_jsonl(tmp_path / "nq.jsonl", [{"question": "q?", "answers": ["x"], "ctxs": [{"title": "A", "text": "x is here.", "has_answer": True}]}])
    rag_demos = write_jsonl(tmp_path / "nq_demo.jsonl", [{"question": "who?", "answers": ["Ada"], "ctxs": [{"title": "B", "text": "Ada did."}]}])
    _, (ex,) = helmet_task(rag, demos=rag_demos, shots=1)
    seq = label(ex, llama.tokenizer)
    assert [seq.text[a:b] for a, b in seq.char_spans["demos"]] == ["Document (Title: B): Ada did.\n\nQuestion: who?\nAnswer: Ada\n\n"]


def test_helmet_in_context_learning(llama, tmp_path):
    train = [{"text": f"sentence {i} about {lab}", "intent": lab} for i in range(6) for lab in ("card", "loan", "atm")]
    demos = write_jsonl(tmp_path / "banking77_train.jsonl", train)
    test = write_jsonl(tmp_path / "icl_banking77.jsonl", [{"text": "where is my card", "intent": "card"}, {"text": "sentence 0 about loan", "intent": "loan"}])
    task, (ex, own) = helmet_task(test, demos=demos, shots=7)
    seq = label(ex, llama.tokenizer)
    assert (task.category, task.metric) == ("icl", "label") and ex.meta["labels"] == 3
    docs = [seq.text[a:b] for (a, b) in (seq.char_spans[f"doc_{i}"][0] for i in range(1, 8))]
    number = {d.split(" about ")[1].split("\n")[0]: d.rsplit("label: ", 1)[1] for d in docs}
    # every label has one number, the numbers are 0..2, the answer is the asked label's
    assert sorted(number.values()) == ["0", "1", "2"] and ex.answers == (number["card"],)
    # balanced: the first two rounds hold every label once, the seventh starts a third round
    assert [sorted(d.split(" about ")[1].split("\n")[0] for d in docs[r:r + 3]) for r in (0, 3)] == [["atm", "card", "loan"]] * 2
    assert relevant_texts(seq) == [d for d in docs if "about card" in d] and seq.text[slice(*seq.char_spans["question"][0])] == "where is my card"
    assert seq.text.endswith("where is my card\nlabel:")  # a base model: a line break before the reply start
    assert task.grade(f"label: {number['card']}", ex.answers, ex.meta) == 1.0
    assert "sentence 0 about loan\n" not in own.text  # a text is never its own demonstration
    assert helmet_task(test, demos=demos, shots=7)[1][0].text == ex.text
    with pytest.raises(DataError, match="needs shots > 0 and a demo file"):
        helmet_task(test)
    two = write_jsonl(tmp_path / "trec.jsonl", [{"text": "what is x", "coarse_label": 1, "fine_label": 7}])
    with pytest.raises(DataError, match="trec.jsonl:1: .*exactly one label field"):
        helmet_task(two, demos=demos, shots=1)


def test_helmet_long_qa(llama, tmp_path):
    story = "The ship left at dawn.\n\nMara kept the lighthouse on Vell Island.\n\nThe storm came at night."
    qa = write_jsonl(tmp_path / "infbench_qa_eng.jsonl", [
        {"id": 1, "context": story, "input": "Who kept the lighthouse?", "answer": ["Mara"]},
        {"id": 2, "context": story, "input": "When did the ship leave?", "answer": ["at dawn"]},
    ])  # fmt: skip
    task, (ex, _) = helmet_task(qa)
    seq = label(ex, llama.tokenizer)
    assert (task.category, task.metric) == ("long_qa", "rouge_f1") and len(seq.char_spans["irrelevant"]) == 2
    assert relevant_texts(seq) == ["Mara kept the lighthouse on Vell Island."] and ex.answers == ("Mara",)
    assert task.grade("Mara, the keeper", ex.answers, ex.meta) == pytest.approx(0.5)  # P 1/3, R 1
    # demonstrations from the file's other questions, with the story left out
    _, (ex, _) = helmet_task(qa, shots=1)
    seq = label(ex, llama.tokenizer)
    assert [seq.text[a:b] for a, b in seq.char_spans["demos"]] == [
        "For example:\n\n[story text]\nQuestion: When did the ship leave?\nAnswer: at dawn\n\nNow, read the following story:\n\n"]
    mc = write_jsonl(tmp_path / "infbench_choice_eng.jsonl", [
        {"id": 3, "context": story, "input": "Where was the lighthouse?", "answer": ["Vell Island"], "options": ["Oslo", "Vell Island", "Rye", "Kent"]}])
    task, (ex,) = helmet_task(mc)
    seq = label(ex, llama.tokenizer)
    assert (task.category, task.metric) == ("long_qa", "choice") and ex.answers == ("B", "B. Vell Island")
    assert "Options:\nA. Oslo\nB. Vell Island\nC. Rye\nD. Kent" in seq.text[slice(*seq.char_spans["question"][0])]
    assert relevant_texts(seq) == ["Mara kept the lighthouse on Vell Island."] and task.grade("B", ex.answers, ex.meta) == 1.0
    # NarrativeQA's own record; an abstractive answer leaves no relevant document
    nqa = write_jsonl(tmp_path / "narrativeqa.jsonl", [{"document": {"id": "d1", "text": story}, "question": {"text": "What was the weather?"},
                                                        "answers": [{"text": "stormy"}, {"text": "bad"}]}])  # fmt: skip
    _, (ex,) = helmet_task(nqa)
    assert ex.relevant is None and ex.answers == ("stormy", "bad") and ex.text.startswith("You are given a story, which can be")
    bad = write_jsonl(tmp_path / "bad_mc.jsonl", [{"context": story, "input": "q", "answer": ["Paris"], "options": ["a", "b", "c", "d"]}])
    with pytest.raises(DataError, match="bad_mc.jsonl:1: the answer 'Paris' is not one of the options"):
        helmet_task(bad)


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
    # the paper's categories but summarisation and citation
    assert {t.category for t in TASKS.values()} == {"recall", "rag", "re_rank", "icl", "long_qa"}
    assert all(t.metric in ("recall", "em", "ndcg@10", "label", "rouge_f1", "choice") and t.max_new_tokens > 0 for t in TASKS.values())
    assert TASKS["mv"].grade("1 2", ["1", "2", "3", "4"]) == 0.5 and TASKS["nq"].grade("The Beatles!", ["beatles"]) == 1.0


def test_seeds_take_disjoint_held_out_questions(llama, nq_path, kv_path):
    from lens_focus import load_examples

    train = {e.question_id for e in load_examples(nq_path, split="train", n_docs=1, gold_positions=[1], variants=("gold",))}
    by_seed = [{e.question_id for e in build_task("nq", llama.tokenizer, lengths=[3000], n=3, seed=s, nq=nq_path)} for s in (0, 1)]
    assert len(by_seed[0]) == len(by_seed[1]) == 3 and not by_seed[0] & by_seed[1] and not (by_seed[0] | by_seed[1]) & train
    kv = [{e.meta["source"] for e in build_task("json_kv", llama.tokenizer, lengths=[600], n=2, seed=s, kv=kv_path)} for s in (0, 1)]
    assert len(kv[0] | kv[1]) == 4


@pytest.mark.parametrize("task", ["rerank", "icl", "long_qa", "long_qa_mc"])
def test_fact_tasks_of_the_other_categories(task, llama):
    tok = llama.tokenizer
    examples = build_task(task, tok, lengths=(400, 800), n=3, seed=1)
    assert len(examples) == 6 and len({e.id for e in examples}) == 6
    assert build_task(task, tok, lengths=(400,), n=3, seed=1)[0].text == examples[0].text  # seeded
    depths = []
    for ex in examples:
        seq = label(ex, tok)
        assert 0.8 * ex.meta["length"] <= context_tokens(seq) <= ex.meta["length"] + 8, (ex.id, context_tokens(seq))
        texts = relevant_texts(seq)
        t = TASKS[task]
        if task == "rerank":  # the relevant document is the one graded 2, and the gold ranking starts with it
            (doc,) = texts
            best = ex.answers[0].split(" > ")
            assert doc.startswith(f"[ID: {best[0]}]") and ex.meta["qrels"][best[0]] == 2
            assert sorted(ex.meta["qrels"].values(), reverse=True) == [ex.meta["qrels"][d] for d in best]
            assert t.grade("Ranking: " + ex.answers[0], ex.answers, ex.meta) == 1.0
            assert t.grade(" > ".join(best[::-1]), ex.answers, ex.meta) < 1.0 and t.grade("no idea", ex.answers, ex.meta) == 0.0
            depths.append(ex.meta["depth"])
        elif task == "icl":  # every demonstration of the asked label is relevant, and only those
            label_line = f"label: {ex.answers[0]}"
            assert texts and all(x.endswith(label_line) for x in texts)
            others = [seq.text[a:b] for d in ex.documents if d not in ex.relevant_names for a, b in seq.char_spans[d]]
            assert not any(x.endswith(label_line) for x in others)
            assert t.grade(f" {label_line}\n", ex.answers, ex.meta) == 1.0 and t.grade("label: 99", ex.answers, ex.meta) == 0.0
        else:  # one story sentence states the answer
            (sentence,) = texts
            value = ex.answers[0] if task == "long_qa" else ex.answers[1].split(". ", 1)[1]
            assert value in sentence
            if task == "long_qa_mc":
                assert f"\n{ex.answers[1]}" in seq.text and t.grade(f" {ex.answers[0]}", ex.answers, ex.meta) == 1.0
                wrong = next(L for L in "ABCD" if L != ex.answers[0])
                assert t.grade(f" {wrong}", ex.answers, ex.meta) == 0.0
            else:
                assert t.grade(f" {value}.", ex.answers, ex.meta) == 1.0 and 0 < t.grade(f" It is {value}.", ex.answers, ex.meta) < 1
            depths.append(ex.meta["depth"])
    if depths:
        assert min(depths) == 0 and max(depths) == 100  # the relevant fact spread from first to last


def test_ranking_rouge_and_choice_metrics_against_direct_computations():
    import itertools
    import math

    from lens_focus.metrics import choice_accuracy, label_accuracy, ndcg_at_k, parse_ranking, rouge_l_f1

    def lcs(a, b):  # brute force: the longest subsequence of a that is also one of b
        for n in range(min(len(a), len(b)), 0, -1):
            subs = set(itertools.combinations(a, n))
            if any(c in subs for c in itertools.combinations(b, n)):
                return n
        return 0

    for pred, gold in [("the cat sat on the mat", "the cat on a mat"), ("Quito, of course", "quito"), ("a b c d", "d c b a"), ("x", "y")]:
        p, g = pred.lower().replace(",", "").split(), gold.split()
        k = lcs(p, g)
        want = 0.0 if k == 0 else 2 * (k / len(p)) * (k / len(g)) / (k / len(p) + k / len(g))
        assert rouge_l_f1(pred, [gold]) == pytest.approx(want), (pred, gold)
    assert rouge_l_f1("Lima", ["Oslo", "Lima"]) == 1.0  # the best of several answers
    assert parse_ranking("Ranking: [ID: 3] > ID 1 > 7 > 3") == ["3", "1", "7"] and parse_ranking("none") == []
    assert parse_ranking("12 > 4, then 9 > 8 > 7") == ["9", "8", "7"]  # the longest run
    qrels = {"1": 2, "3": 1, "9": 0, "5": 1}
    want = (1 / math.log2(2) + 2 / math.log2(3) + 0) / (2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4))
    assert ndcg_at_k(["3", "1", "9"], qrels) == pytest.approx(want) and ndcg_at_k(["1", "3", "5"], qrels) == 1.0
    assert ndcg_at_k(["9"] * 1 + [str(i) for i in range(100, 120)], qrels, k=10) == 0.0 and ndcg_at_k(["1"], {"1": 0}) == 0.0
    assert label_accuracy("Label: 4\nmore", ["4"]) == 1.0 and label_accuracy("4 or 5", ["4"]) == 0.0
    assert choice_accuracy("B", ["B", "B. parrot"]) == 1.0 and choice_accuracy("(b) maybe", ["B", "B. parrot"]) == 1.0
    assert choice_accuracy("I pick B. parrot", ["B", "B. parrot"]) == 1.0 and choice_accuracy("Because", ["B", "B. parrot"]) == 0.0


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_length_s_prompts_do_not_depend_on_the_other_lengths_built_with_it(task, llama, nq_path, kv_path):
    """What lets reproduce keep a task run's cells when lengths are added (``lengths`` is keyed):
    the prompts at a length are the same whichever lengths are built beside it."""
    from transformers import AutoTokenizer

    from lens_focus.model import locate_model

    tok = AutoTokenizer.from_pretrained(locate_model("toy")) if task.startswith("toy") else llama.tokenizer
    short, long = (80, 160) if task.startswith("toy") else (3000, 6000) if task == "nq" else (400, 800)

    def built(lengths):
        return {e.id: (e.documents, e.answers, e.meta) for e in build_task(task, tok, lengths=lengths, n=3, nq=nq_path, kv=kv_path)}

    both, alone = built([short, long]), built([long])
    assert alone and set(alone) < set(both) and all(both[k] == v for k, v in alone.items())
    assert built([short]).items() <= both.items()
