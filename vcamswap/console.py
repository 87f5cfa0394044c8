"""What the commands say at the terminal: a line for the user, a one-line failure, a yes/no question."""

from __future__ import annotations

import sys


def say(line: str) -> None:
    print(line, flush=True)


def warn(line: str) -> None:
    """A line on standard error, named for the program."""
    print(f"vcamswap: {line}", file=sys.stderr, flush=True)


def fail(message: str, code: int = 2) -> int:
    """Say why a command failed, in one line; the exit status to return."""
    print(f"vcamswap: error: {message}", file=sys.stderr, flush=True)
    return code


def first_line(e: BaseException) -> str:
    """An error's message cut to its first line (its type when it has none)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def ask(question: str) -> bool:
    """Yes only when a person at a terminal says so; no terminal means no."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False
