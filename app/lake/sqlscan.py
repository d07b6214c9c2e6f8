"""Just enough of SQL's lexical structure to find the statements of a migration file that would end
the transaction the whole run is in (COMMIT, ROLLBACK, BEGIN, ...): comments, quoted strings and
identifiers, and dollar-quoted bodies are skipped, the rest is split at semicolons."""

from __future__ import annotations

import re

ENDS_TRANSACTION = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"}
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_]+")


def statements(text: str) -> list[str]:
    """The top-level statements of a script, with comments and quoted text blanked out."""
    out: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c in ("'", '"'):
            # E'...' strings escape with backslashes; standard strings only by doubling the quote.
            escapes = c == "'" and i > 0 and text[i - 1] in "eE" and (i < 2 or not text[i - 2].isalnum())
            i += 1
            while i < n:
                if text[i] == c and text.startswith(c * 2, i):
                    i += 2
                elif escapes and text[i] == "\\":
                    i += 2
                elif text[i] == c:
                    i += 1
                    break
                else:
                    i += 1
            current.append(" ")
        elif c == "$" and (m := _DOLLAR.match(text, i)):
            end = text.find(m.group(0), m.end())
            i = n if end < 0 else end + len(m.group(0))
            current.append(" ")
        elif c == ";":
            out.append("".join(current).strip())
            current = []
            i += 1
        else:
            current.append(c)
            i += 1
    out.append("".join(current).strip())
    return [s for s in out if s]


def transaction_control(text: str) -> str | None:
    """The first statement that would begin, end or split the surrounding transaction, if any."""
    for statement in statements(text):
        m = _WORD.match(statement)
        if m and m.group(0).upper() in ENDS_TRANSACTION:
            if m.group(0).upper() == "PREPARE" and not re.match(r"PREPARE\s+TRANSACTION\b", statement, re.I):
                continue  # PREPARE of a statement is harmless
            return " ".join(statement.split()[:3])
    return None
