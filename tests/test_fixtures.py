"""The synthetic data files the tests read, and the real files they stand in for."""
import gzip
import json
import sys

import pytest

from conftest import FIXTURES, KV, NQ

from lens_focus.data import DataError
from lens_focus.sources import load_examples

sys.path.insert(0, str(FIXTURES))
import make_fixtures  # noqa: E402


def test_the_committed_fixtures_are_what_the_generator_writes(tmp_path):
    for records, committed in ((make_fixtures.nq_records(), NQ), (make_fixtures.kv_records(), KV)):
        assert make_fixtures.write(records, tmp_path / committed.name).read_bytes() == committed.read_bytes()


def _first(path):
    with gzip.open(path, "rt") as f:
        return json.loads(f.readline())


def test_the_fixtures_have_the_fields_of_the_real_files(real_data):
    for fixture, real in ((NQ, real_data / "nq-open-oracle.jsonl.gz"), (KV, real_data / "kv-retrieval-75_keys.jsonl.gz")):
        ours, theirs = _first(fixture), _first(real)
        assert set(ours) <= set(theirs), fixture.name
        for key in ours:
            assert type(ours[key]) is type(theirs[key]), (fixture.name, key)
    assert set(_first(NQ)["ctxs"][0]) == set(_first(real_data / "nq-open-oracle.jsonl.gz")["ctxs"][0])
    assert len(_first(KV)["ordered_kv_records"]) == len(_first(real_data / "kv-retrieval-75_keys.jsonl.gz")["ordered_kv_records"])


@pytest.mark.slow
def test_the_real_files_load(real_data):
    path = real_data / "nq-open-oracle.jsonl.gz"
    nq = load_examples(path, split="test", limit=100, n_docs=20, gold_positions=[1, 20], variants=("long",))
    assert len(nq) == 2 * 100 and all(len(e.documents) == 20 for e in nq)
    # one question of the 2655 cannot have 19 distractors: its answer "S" is in every other gold passage
    with pytest.raises(DataError, match="nq-open-oracle.jsonl.gz:1841: only 0 distractor documents without the answer, 19 needed"):
        load_examples(path, split="all", n_docs=20, gold_positions=[1], variants=("long",))
    kv = load_examples(real_data / "kv-retrieval-75_keys.jsonl.gz", split="all", limit=3, n_docs=75, gold_positions=[75])
    assert len({e.question_id for e in kv}) == 3 and all(e.answers[0] in e.text for e in kv)
