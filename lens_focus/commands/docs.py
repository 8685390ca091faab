"""The README's generated blocks, written from what the code and the data say: the steps of
``reproduce`` (the registered experiments), the command reference (the commands themselves, their
options and defaults), the supported models (the conformance matrix of :data:`lens_focus.tiny.FAMILY_LIST`),
the committed runs and what each shows (its files, :mod:`lens_focus.analyses.findings`).

A block sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``; the text around it
is written by hand. ``python -m lens_focus.commands.docs`` rewrites every block of README.md in
place; ``tests/test_readme.py`` fails when README.md differs from what this writes, so a changed
option, step or committed number shows up as a failing test until the README follows.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from typer.main import get_command

from ..analyses.findings import findings
from ..fast import FAST_ARCHITECTURES, NOT_FAST
from ..tiny import FAMILY_LIST
from .cli import make_app
from .declare import steps
from .options import MODEL_OPTIONS

BLOCK = re.compile(r"(<!-- generated: (?P<name>[^>]+?) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)


def steps_table() -> str:
    """Every step of ``lens-focus reproduce``, in order, with the steps it reads."""
    lines = ["| step | what it does | reads | experiment |", "|---|---|---|---|"]
    for experiment, step in steps():
        reads = ", ".join(f"`{n}`" for n in step.needs)
        command = f"`lens-focus {experiment.name}`" if experiment.command else "—"
        lines.append(f"| `{step.name}` | {step.title} | {reads} | {command} |")
    return "\n".join(lines)


def _first_sentence(text: str) -> str:
    text = " ".join((text or "").split())
    end = re.search(r"(?<!\bal)(?<!e\.g)\.\s", text + " ")  # "Wu et al. 2024" does not end a sentence
    return text[: end.start() + 1] if end else text


def _option(param) -> str:
    default = param.default if param.show_default and param.default not in (None, False, "") else None
    return f"`{param.opts[0]}`" + (f" ({default})" if default is not None else "")


MODEL_NAMES = {p.name for p in MODEL_OPTIONS}


def commands_table() -> str:
    """Every command with what it does and its options (and their defaults); the model's options,
    which every command that loads a model takes, are left to the text above the table."""
    group = get_command(make_app())
    rows = []
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        subs = [(f"{name} {n}", cmd.get_command(None, n)) for n in cmd.list_commands(None)] if hasattr(cmd, "list_commands") else [(name, cmd)]
        for full, c in subs:
            args = " ".join(p.name.upper() for p in c.params if p.param_type_name == "argument")
            opts = ", ".join(_option(p) for p in c.params if p.param_type_name == "option" and p.name not in MODEL_NAMES | {"help"})
            rows.append(f"| `{full}{' ' + args if args else ''}` | {_first_sentence(c.help)} | {opts} |")
    return "\n".join(["| command | does | options (default) |", "|---|---|---|", *rows])


def runs_list(repo: Path) -> str:
    """The committed runs: where each index is, its model and data, which steps are done."""
    lines = []
    for plan_file in sorted(repo.glob("figures/*/plan.json")):
        run = plan_file.parent
        plan = json.loads(plan_file.read_text())
        done = [s.name for _, s in steps() if (run / s.name / "done.json").exists()]
        missing = [s.name for _, s in steps() if s.name not in done]
        rel = run.relative_to(repo).as_posix()
        lines.append(f"- [`{rel}/index.md`]({rel}/index.md): `--model {plan['model']}`, data `{plan['data']}`"
                     + (", the quick plan" if plan.get("quick") else "") + f"; steps done: {', '.join(done) or 'none'}"
                     + (f"; not run: {', '.join(missing)}" if missing else "") + ".")  # fmt: skip
    return "\n".join(lines)


def _sites(sites: tuple[str, ...], rotary: bool) -> str:
    if not sites:
        return "none"
    if not rotary:
        return "on `hook_q`/`hook_k` (no rotation)"
    return {("post_rotary", "pre_rotary"): "post- and pre-rotary", ("post_rotary",): "post-rotary", ("pre_rotary",): "pre-rotary"}[sites]


def families_table() -> str:
    """The conformance matrix (:data:`lens_focus.tiny.FAMILY_LIST`, tests/test_families.py) as the
    README's supported-models table: each family's class, what its tiny model switches on, the
    attention paths it runs on (and why not fast), where compensation and directions run."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    lines = ["| family (`transformers` class) | what the matrix switches on | attention paths | compensation | directions |", "|---|---|---|---|---|"]
    for f in FAMILY_LIST:
        cls = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[f.model_type]
        fast = cls in FAST_ARCHITECTURES
        paths = "fast, eager" if fast else f"eager ({NOT_FAST.get(cls, 'not among the decoders the fast path is checked on')})"
        compensation = ("fast path only" if fast else "not available") if f.delegates else "every path"
        sites = _sites(f.sites, "no rotary" not in f.switched_on and "no rotation" not in f.switched_on)
        if f.fast_sites is not None and f.fast_sites != f.sites:
            sites = f"{_sites(f.fast_sites, True)} on the fast path, {sites} on eager"
        lines.append(f"| {f.label} (`{cls}`) | {f.switched_on} | {paths} | {compensation} | {sites} |")
    return "\n".join(lines)


def blocks(repo: Path) -> dict[str, str]:
    """Every generated block's text, by name."""
    out = {"steps": steps_table(), "commands": commands_table(), "runs": runs_list(repo), "families": families_table()}
    for run in sorted(repo.glob("figures/*/plan.json")):
        out[f"findings {run.parent.relative_to(repo).as_posix()}"] = findings(run.parent)
    return out


def render(text: str, repo: Path) -> str:
    """``text`` (README.md) with every generated block written afresh; an unknown block is an error."""
    made = blocks(repo)

    def fill(m: re.Match) -> str:
        if m["name"] not in made:
            raise KeyError(f"README.md has a block {m['name']!r} that nothing writes; the blocks are {', '.join(made)}")
        return f"{m.group(1)}{made[m['name']]}\n{m.group(4)}"

    return BLOCK.sub(fill, text)


def main(repo: Path = Path.cwd()) -> None:  # pragma: no cover
    """Rewrite the generated blocks of ``repo/README.md`` (run from the repository's root)."""
    readme = repo / "README.md"
    if not readme.is_file():
        sys.exit(f"error: no README.md in {repo}; run this from the repository's root")
    new = render(readme.read_text(), repo)
    changed = new != readme.read_text()
    readme.write_text(new)
    print(f"{'rewrote' if changed else 'unchanged'}: {readme}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    main()
