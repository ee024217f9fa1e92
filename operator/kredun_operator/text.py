"""User-supplied text (task names, error messages, log tails, previews) made safe to show.

Whoever writes a plan chooses its task names, and a job's code chooses its error messages
and output; the operator repeats them in its log, in Events and in the status (whose
preview `kubectl get` prints as a column). A newline there could forge a log line or a
table row, and terminal escape sequences could rewrite what an operator sees. So control
characters are shown escaped (`\\n`, `\\x1b`, `\\u2028`), never written as they are.
"""

from __future__ import annotations

import logging
import re

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def one_line(text: str) -> str:
    """`text` with every control character escaped: it shows as one line."""
    return _CONTROLS.sub(_escape, text)


def lines(text: str) -> str:
    """`text` with its line breaks kept and every other control character escaped (for
    tracebacks and log tails, which are many lines by nature)."""
    return _CONTROLS_BUT_NEWLINES.sub(_escape, text)


class OneLineMessages(logging.Filter):
    """Escapes control characters in log messages, arguments included; a handler's filter."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = one_line(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True
