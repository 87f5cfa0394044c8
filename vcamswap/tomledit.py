"""Changing a few top-level keys of a TOML file in place: the user's comments, order and spacing stay.

The daemon saves only flat values (face, preset, targets, swap, label). Each is changed on its own line, the
rest of the text is kept byte for byte, and a key the file lacks is added after the other top-level keys.
The result is parsed again and must hold exactly the intended data; anything this does not handle (a value
spread over lines, a key inside a table) gives None, and the caller rewrites the file whole instead.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TABLE = re.compile(r"\s*\[")
_BARE_VALUE = re.compile(r"[^\s#,\]}]+")


def update_keys(text: str, changes: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """`text` with each key of `changes` set in place; None unless the result parses to `expected`."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for key, value in changes.items():
        rendered = _render(key, value)
        if rendered is None or not _set_line(lines, key, rendered):
            return None
    new = "".join(lines)
    try:
        return new if tomllib.loads(new) == expected else None
    except tomllib.TOMLDecodeError:
        return None


def _render(key: str, value: Any) -> str | None:
    """`value` as TOML (tomli_w's escaping); None for tables and arrays, which are not edited in place."""
    if isinstance(value, (dict, list)) or not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return None
    return tomli_w.dumps({key: value}).split(" = ", 1)[1].rstrip("\n")


def _top_level_end(lines: list[str]) -> int:
    """Index of the first table header (or len(lines)): the top-level keys come before it."""
    return next((i for i, line in enumerate(lines) if _TABLE.match(line)), len(lines))


def _set_line(lines: list[str], key: str, rendered: str) -> bool:
    end = _top_level_end(lines)
    names = "|".join(re.escape(k) for k in {key, key.replace("_", "-")})
    pattern = re.compile(rf"(\s*(?:{names}|\"(?:{names})\"|'(?:{names})')\s*=\s*)(.*?)(\r?\n)$")
    for i in range(end):
        m = pattern.match(lines[i])
        if m is None:
            continue
        rest = _after_value(m.group(2))
        if rest is None:
            return False
        lines[i] = m.group(1) + rendered + rest + m.group(3)
        return True
    at = end
    while at > 0 and not lines[at - 1].strip():  # keep the blank lines before a table below the new key
        at -= 1
    lines.insert(at, f"{key} = {rendered}\n")
    return True


def _after_value(value_and_rest: str) -> str | None:
    """What follows the value on its line (spaces and a comment); None for a value spread over lines."""
    s = value_and_rest
    if s.startswith(('"""', "'''")):
        return None
    if s.startswith('"'):
        i = 1
        while i < len(s) and s[i] != '"':
            i += 2 if s[i] == "\\" else 1
        return s[i + 1:] if i < len(s) else None
    if s.startswith("'"):
        j = s.find("'", 1)
        return s[j + 1:] if j > 0 else None
    m = _BARE_VALUE.match(s)
    return s[m.end():] if m else None
