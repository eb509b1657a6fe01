"""The README, checked where the docs generator cannot see it.

`mkdocs build --strict` (run by `.ci/run`) checks the site in `docs/`: every link between its
pages and every anchor. The README is not part of the site, so this file checks it: it stays a
front door (under 300 lines), each of its relative links leads to a file of the repository (and
to a heading there when it names one), its example commands parse with the `dsmnas` parser of
this checkout, and its test command is the one `.ci/run` runs.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 300

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^()\s]+)\)")
"""A Markdown link or image, `[text](target)` / `![alt](target)`: group 1 is the target."""
FENCE = re.compile(r"^```(\w*)\s*$")


def _prose_and_blocks(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The lines outside code fences, and each fenced block as (language, lines)."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m and block is None:
            block = (m.group(1), [])
        elif line.startswith("```") and block is not None:
            blocks.append(block)
            block = None
        elif block is not None:
            block[1].append(line)
        else:
            prose.append(line)
    assert block is None, "unclosed code fence"
    return prose, blocks


def slugify(heading: str) -> str:
    """A heading's anchor as MkDocs (Python-Markdown's toc) makes it; GitHub's agrees for the
    headings these files use (no repeated punctuation or duplicate headings)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    prose, _ = _prose_and_blocks(path.read_text(encoding="utf-8"))
    return {slugify(m.group(1)) for line in prose if (m := re.match(r"#{1,6}\s+(.*?)\s*#*$", line))}


def readme_links() -> list[str]:
    prose, _ = _prose_and_blocks(README.read_text(encoding="utf-8"))
    # Links may wrap across lines: join the prose, then find them.
    return LINK.findall("\n".join(prose))


def test_slugify_matches_mkdocs_on_hand_made_headings():
    assert slugify("Search quality: the paper's protocol (Table II)") == \
        "search-quality-the-papers-protocol-table-ii"
    assert slugify("Ablations (`dsmnas ablate`, seeds 0–29)") == "ablations-dsmnas-ablate-seeds-029"
    assert slugify("Your own table (`table:FILE`)") == "your-own-table-tablefile"


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < MAX_LINES, f"README.md has {len(lines)} lines; the manual belongs in docs/"


def test_readme_relative_links_resolve():
    links = [t for t in readme_links() if not re.match(r"[a-z][a-z0-9+.-]*:", t)]
    assert len(links) >= 10, links  # the README links into the manual and the report
    broken = []
    for target in links:
        file_part, _, anchor = target.partition("#")
        path = (README.parent / file_part).resolve() if file_part else README
        if ROOT not in path.parents and path != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def readme_commands() -> list[list[str]]:
    """Every `dsmnas ...` line of the README's ```bash blocks (synopses in plain ``` blocks
    and commands with placeholders are not examples)."""
    _, blocks = _prose_and_blocks(README.read_text(encoding="utf-8"))
    commands = []
    for language, lines in blocks:
        if language != "bash":
            continue
        joined = "\n".join(lines).replace("\\\n", " ")
        for line in joined.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "dsmnas":
                    commands.append(words[1:])
    return commands


def test_readme_example_commands_parse(capsys):
    from dsmnas.experiments.cli import build_parser

    commands = readme_commands()
    subcommands = {argv[0] for argv in commands if argv}
    # One example per command of the tour, and the Quickstart's bare `dsmnas search`.
    assert {"search", "resume", "compare", "ablate", "sweep", "train-supernet"} <= subcommands
    for argv in commands:
        try:
            args = build_parser(argv).parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: dsmnas {' '.join(argv)}\n"
                        f"{capsys.readouterr().err}")
        assert args.command == argv[0]


def test_readme_test_command_is_what_ci_runs():
    _, blocks = _prose_and_blocks(README.read_text(encoding="utf-8"))
    readme_tests = [line for _, lines in blocks for line in lines if "pytest" in line]
    assert len(readme_tests) == 1, readme_tests
    install, _, test = readme_tests[0].rpartition(" && ")
    extras = set(re.search(r'\.\[([\w,]+)\]', install).group(1).split(","))
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == test, "the README's test command must be .ci/run's last line"
    ci_install = next(line for line in commands if "pip install" in line and '-e "' in line)
    ci_extras = set(re.search(r'\.\[([\w,]+)\]', ci_install).group(1).split(","))
    assert extras <= ci_extras, (extras, ci_extras)


def test_settings_reference_has_every_flag_and_sweep_key():
    """docs/manual/settings.md names the flag of every setting of the env, the learner, the
    runs, sweeps and live results (the flags are made from these fields, so a field added
    without its line here fails), and every sweep-file key."""
    import dataclasses
    import typing

    from dsmnas.envs.config import EnvConfig
    from dsmnas.experiments import settings
    from dsmnas.experiments.flags import flag_name
    from dsmnas.trainables.learner import LearnerSettings
    from dsmnas.trainables.live import LiveSettings

    text = (ROOT / "docs" / "manual" / "settings.md").read_text()
    missing = []
    for cls in (EnvConfig, LearnerSettings, settings.RunSettings, settings.RunCommand,
                settings.SweepSettings, settings.SweepCommand, settings.SearchCommand,
                settings.EvaluatorSettings, LiveSettings):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            flag = flag_name(f, hints[f.name])
            if f.name != "options" and f"`{flag}`" not in text and f"`{flag} " not in text:
                missing.append(f"{cls.__name__}.{f.name} ({flag})")
    missing += [f"sweep key {k}" for k in settings.KEYS if f"`{k}`" not in text]
    assert not missing, missing
