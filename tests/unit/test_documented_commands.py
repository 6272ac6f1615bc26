"""Every command of ours that README.md, docs/ and the clients' and deploy's READMEs show
parses as written: the command, its subcommands and options exist, and its arguments fit.

Each is parsed by the command's own Click parser, not run (they act on a live system): what
fails here is what a reader typing it would see fail, "No such command" or "Got unexpected
extra argument(s)". The environment a reader would have set (the `export`s and `VAR=value`
prefixes written before) is set for the parse, since options read their variables.
"""

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

# Typer carries its own copy of Click, and with it the error its parser raises.
from typer._click.core import Command
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from devstack.cli import app as devstack
from point_agent.cli import app as point_agent
from registration.admin import app as registration_admin

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    *sorted(ROOT.glob("docs/*.md")),
    *sorted(ROOT.glob("clients/*/README.md")),
    *sorted(ROOT.glob("deploy/*/README.md")),
]
COMMANDS: dict[str, typer.Typer] = {
    "registration-admin": registration_admin,
    "point-agent": point_agent,
    "devstack": devstack,
}
# bin/run is `uv run devstack up "$@"`; bin/test hands its arguments to pytest.
SCRIPTS = {"bin/run": ("devstack", ["up"]), "bin/test": None}
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
SHELLS = {"", "bash", "sh", "shell", "console"}
# Inline code written to be typed (`uv run devstack kafka-start`, `bin/run`, `point-agent
# --help`), not a name in a sentence (`point-agent`, `devstack alert-routes`).
INLINE = re.compile(r"`(uv run [^`]+|bin/\w+(?: [^`]+)?|[\w-]+ [^`]*--help)`")


def shell_blocks(text: str) -> Iterator[str]:
    """The fenced blocks of shell (```bash, ```sh, ```console or unmarked)."""
    block: list[str] | None = None
    shell = False
    for line in text.splitlines():
        if line.startswith("```"):
            if block is None:
                block, shell = [], line[3:].strip() in SHELLS
            else:
                if shell:
                    yield "\n".join(block)
                block = None
        elif block is not None:
            block.append(line)


def shell_lines(text: str) -> Iterator[str]:
    """The commands of the document's shell blocks (continued lines and quotations that run
    on joined), then its inline code that is a command of ours."""
    for block in shell_blocks(text):
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                shlex.split(pending, comments=True)
            except ValueError:
                continue  # a quotation still open: the command goes on on the next line
            yield pending
            pending = ""
    yield from INLINE.findall(text)


def simple_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a line (split at `&&`, `||`, `;` and `|`), comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def ours(words: list[str], environment: dict[str, str]) -> tuple[str, list[str]] | None:
    """The command of ours and its arguments, if `words` runs one; the assignments before it
    (and `export`s) go into `environment`."""
    if words[0] == "export":
        for word in words[1:]:
            name, _, value = word.partition("=")
            environment[name] = value or "x"
        return None
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        environment[name] = value or "x"
    if words[:2] == ["uv", "run"]:
        words = words[2:]
    if not words:
        return None
    if words[0] in SCRIPTS:
        script = SCRIPTS[words[0]]
        assert (ROOT / words[0]).exists(), words[0]
        if script is None:
            return None
        name, before = script
        return name, [*before, *words[1:]]
    if words[0] in COMMANDS:
        return words[0], words[1:]
    return None


def documented() -> list[tuple[str, str, list[str], dict[str, str]]]:
    found = []
    for document in DOCUMENTS:
        environment: dict[str, str] = {}
        for line in shell_lines(document.read_text()):
            for words in simple_commands(line):
                command = ours(words, environment)
                if command is not None:
                    found.append((str(document.relative_to(ROOT)), *command, dict(environment)))
    return found


def parse(command: Command, name: str, args: list[str]) -> None:
    """What Click does before running a command: each group's options, then the subcommand
    named, down to the command, whose options and arguments must all fit."""
    context = command.make_context(name, list(args))
    while isinstance(command, TyperGroup):
        rest = [*context._protected_args, *context.args]
        if not rest:
            return
        found, subcommand, rest = command.resolve_command(context, rest)
        assert found is not None and subcommand is not None
        command, context = subcommand, subcommand.make_context(found, rest, parent=context)


WRITTEN = documented()


def test_the_documents_show_each_of_our_commands() -> None:
    shown = {name for _, name, _, _ in WRITTEN}
    assert shown == set(COMMANDS), shown


@pytest.mark.parametrize(
    ("document", "name", "args", "environment"),
    WRITTEN,
    ids=[f"{d}: {n} {' '.join(a)}"[:90] for d, n, a, _ in WRITTEN],
)
def test_a_documented_command_parses_as_written(
    document: str,
    name: str,
    args: list[str],
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in [v for v in os.environ if v.startswith(("POINT_AGENT_", "REGISTRATION_"))]:
        monkeypatch.delenv(variable)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    command = typer.main.get_command(COMMANDS[name])
    try:
        parse(command, name, args)
    except typer.Exit:
        pass  # --help, --version: shown, then done, as for the reader
    except UsageError as error:
        pytest.fail(f"{document}: `{name} {shlex.join(args)}` fails as written: {error}")
