"""Entry point of the `botwatch` command.

`botwatch run` is dispatched before anything heavy is imported (it is the hot path, started
by schedulers thousands of times a day); every other command goes through click.
"""

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run" and not _asks_help(argv[1:]):
        from ..client.wrapper import main as run_main

        return run_main(argv[1:])
    _tolerant_stdout()
    from .group import cli

    return cli.main(args=argv, prog_name="botwatch", standalone_mode=True)


def _tolerant_stdout() -> None:
    """A character the output's encoding lacks is printed as "?" instead of ending the command
    with UnicodeEncodeError: stdout redirected on Windows is in the ANSI code page (cp1252), which
    has no check marks, arrows or the names of half the world. One "?" for one character keeps
    tables aligned. (`botwatch run` writes the bot's bytes as they are and never gets here.)"""
    reconfigure = getattr(sys.stdout, "reconfigure", None)  # absent where stdout was replaced
    if reconfigure is not None:
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):  # closed, or not a text stream of its own
            pass


def _asks_help(args: list[str]) -> bool:
    own = args[: args.index("--")] if "--" in args else args
    return not own or "--help" in own or "-h" in own
