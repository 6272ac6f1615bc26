"""`point-agent`: the command a connection point's operator runs for the whole session."""

import asyncio
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from point_agent import __version__
from point_agent.agent import Console, Settings, leave, run
from point_agent.decisions import MAX_INTERVAL_S, MIN_INTERVAL_S, ExitCode
from point_agent.learners import (
    MAX_LEARNERS,
    FileCount,
    FixedCount,
    LearnerCountError,
    LearnerSource,
    TypedCount,
    ask_first_count,
)

QUIT_AT_ONCE = 130  # the shell's code for a process ended by Ctrl-C
# Locals of a traceback would include the token.
app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


def _say(line: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {line}", flush=True)


def _complain(line: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {line}", file=sys.stderr, flush=True)


CONSOLE = Console(say=_say, complain=_complain)


def _show_version(value: bool) -> None:
    if value:
        print(f"point-agent {__version__}")
        raise typer.Exit()


@app.command(
    help=(
        "Send this connection point's heartbeats, with the number of learners in the room,"
        " for the whole session. Ctrl-C says the point is leaving, then stops."
    ),
    epilog=(
        "Exit codes: 0 stopped (Ctrl-C, or --leaving sent); 1 --leaving could not be"
        " delivered; 2 bad options or learner count; 3 the server refuses this token, point"
        " or session; 4 the server does not accept this agent's heartbeats (out of date)."
    ),
)
def main(
    token: Annotated[
        str,
        typer.Option(
            envvar="POINT_AGENT_TOKEN",
            show_default=False,
            help="This point's token, as the operations desk issued it. Prefer the variable:"
            " an option shows in the process list.",
        ),
    ],
    point: Annotated[str, typer.Option(envvar="POINT_AGENT_POINT", help="This point's code.")],
    session: Annotated[
        str | None,
        typer.Option(
            envvar="POINT_AGENT_SESSION",
            help="The session's code. Without it the server files the heartbeats under this"
            " point's session on air (or starting within 30 minutes): one setting serves every"
            " session of the course, and between sessions the agent waits.",
        ),
    ] = None,
    server: Annotated[
        str,
        typer.Option(envvar="POINT_AGENT_SERVER", help="The attendance service's address."),
    ] = "http://127.0.0.1:8002",
    learners: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_LEARNERS,
            envvar="POINT_AGENT_LEARNERS",
            help="Learners in the room, fixed for the session.",
        ),
    ] = None,
    learners_file: Annotated[
        Path | None,
        typer.Option(
            envvar="POINT_AGENT_LEARNERS_FILE",
            help="A file holding the learner count, read again before every heartbeat: edit"
            " it whenever the room changes.",
        ),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            min=MIN_INTERVAL_S,
            max=MAX_INTERVAL_S,
            help="Seconds between heartbeats. Default: the session's, as the server says.",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the server's answer.")
    ] = 10.0,
    leaving: Annotated[
        bool,
        typer.Option(
            "--leaving", help="Only tell the server this point leaves the session, then stop."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="A line for every heartbeat.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    settings = Settings(
        server=server,
        token=token,
        point_code=point,
        session_code=session,
        fixed_interval_s=interval,
        timeout_s=timeout,
        verbose=verbose,
    )
    if leaving:
        given = learners is not None or learners_file is not None
        source = _source(learners, learners_file) if given else FixedCount(0)
        raise typer.Exit(asyncio.run(leave(settings, source, CONSOLE)))
    source = _source(learners, learners_file)
    try:
        code: int = asyncio.run(_until_interrupted(settings, source))
    except KeyboardInterrupt:  # the second Ctrl-C: quit without a word to the server
        code = QUIT_AT_ONCE
    raise typer.Exit(code)


def _source(learners: int | None, learners_file: Path | None) -> LearnerSource:
    """The learner count as the operator chose to give it; a usage error if it cannot be."""
    if learners is not None and learners_file is not None:
        raise typer.BadParameter("give --learners or --learners-file, not both")
    if learners is not None:
        return FixedCount(learners)
    if learners_file is not None:
        try:
            return FileCount(learners_file)
        except LearnerCountError as error:
            raise typer.BadParameter(str(error), param_hint="--learners-file") from None
    if not sys.stdin.isatty():
        raise typer.BadParameter(
            "say how many learners are in the room: --learners N, --learners-file PATH, or"
            " run the agent in a terminal to be asked",
            param_hint="--learners",
        )
    return _typed()


def _typed() -> TypedCount:
    try:
        typed = TypedCount(ask_first_count(input, _say))
    except (KeyboardInterrupt, EOFError):
        print()
        _say("stopped before the first heartbeat")
        raise typer.Exit(ExitCode.STOPPED) from None
    _say("type a new number any time the room changes; Ctrl-C leaves the session")
    typed.listen(sys.stdin, _say)
    return typed


async def _until_interrupted(settings: Settings, source: LearnerSource) -> ExitCode:
    """Run until done; the first Ctrl-C (or SIGTERM) leaves the session properly, a second
    Ctrl-C quits at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop_once(signum: signal.Signals) -> None:
        _say("stopping: telling the server this point is leaving (Ctrl-C again to quit now)")
        stop.set()
        loop.remove_signal_handler(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_once, signum)
    return await run(settings, source, stop, CONSOLE)
