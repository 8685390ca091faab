"""Write the synthetic data files the tests read, in the lost-in-the-middle formats (README, Data):

- ``nq-synthetic.jsonl.gz``: 400 questions in the NQ oracle format (``question``, ``answers``,
  one gold context with ``title``, ``text``, ``hasanswer``, ``isgold``), each answer a made-up
  word that no other document contains;
- ``kv-synthetic.jsonl.gz``: 20 key-value examples of 75 UUID pairs (``ordered_kv_records``,
  ``key``, ``value``).

Deterministic (seeded, gzip without a timestamp): ``python tests/data/make_fixtures.py`` writes
the same bytes every time, and a test checks that the committed files are these.
"""
from __future__ import annotations

import gzip
import io
import json
import random
import uuid
from pathlib import Path

HERE = Path(__file__).parent
TOPICS = ["river", "castle", "festival", "treaty", "comet", "railway", "opera", "glacier", "harbor", "library",
          "monastery", "canal", "observatory", "bridge", "vineyard", "lighthouse", "museum", "desert", "island", "mill"]
ROLES = [("who founded", "was founded by"), ("who designed", "was designed by"), ("who discovered", "was first described by"),
         ("who named", "was named by"), ("who restored", "was restored by"), ("who mapped", "was first mapped by")]
FILLER = [
    "The site draws visitors throughout the year and appears in many regional guides.",
    "Local records describe several changes to its surroundings over the following decades, including new roads.",
    "Historians still debate some details of its early years, but most accounts agree on the main events.",
    "A small collection of maps and letters from that period is kept in the town archive.",
]


def _word(rng: random.Random) -> str:
    syllables = ["ka", "lo", "mi", "ra", "ven", "tor", "sel", "du", "bri", "zan", "quo", "fel", "nis", "ory", "pax"]
    return "".join(rng.choice(syllables) for _ in range(3)).capitalize()


def nq_records(n: int = 400, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    names: set[str] = set()
    records = []
    for i in range(n):
        while (name := f"{_word(rng)} {_word(rng)}") in names:
            pass
        names.add(name)
        topic, place = rng.choice(TOPICS), _word(rng)
        ask, state = rng.choice(ROLES)
        filler = " ".join(rng.sample(FILLER, k=3))
        text = f"The {place} {topic} {state} {name} in {1500 + rng.randrange(450)}. {filler}"
        records.append({
            "question": f"{ask} the {place} {topic}",
            "answers": [name],
            "ctxs": [{"title": f"{place} {topic}", "text": text, "hasanswer": True, "isgold": True}],
        })  # fmt: skip
    return records


def kv_records(n: int = 20, pairs: int = 75, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kv = [[str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2)] for _ in range(pairs)]
        key, value = kv[rng.randrange(pairs)]
        out.append({"ordered_kv_records": kv, "key": key, "value": value})
    return out


def write(records: list[dict], path: Path) -> Path:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write("".join(json.dumps(r) + "\n" for r in records).encode())
    path.write_bytes(raw.getvalue())
    return path


if __name__ == "__main__":
    for name, records in (("nq-synthetic.jsonl.gz", nq_records()), ("kv-synthetic.jsonl.gz", kv_records())):
        print(write(records, HERE / name))
