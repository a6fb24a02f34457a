"""Rules every input shares, whoever hands it in (an environment variable, a YAML or snapshot
file, the Graph API, a command-line argument): the form of an ad account id, what text must be,
and how an error message shows the bad value.

No Dagster, pandas or pydantic here: the engine, the settings and the command line all import it.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

# [0-9], never \d or str.isdigit: those also take full-width "１２" and Arabic-Indic "١٢", which
# Meta never sends and int() would quietly read as 12.
DIGITS = re.compile(r"[0-9]+")
AD_ACCOUNT_ID = re.compile(r"act_[0-9]+")
AD_ACCOUNT_FORM = "act_<digits>"

# An error names the bad value, but never pastes a whole input: a value is cut to this many
# characters (a 600-byte YAML alias bomb once produced a 226 MB message).
ECHO_MAX = 80
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = ECHO_MAX
_REPR.maxlevel = 3  # also keeps a value nested a thousand levels deep from exhausting the stack


def echo(value: Any) -> str:
    """``repr(value)`` on one line, cut to about ECHO_MAX characters."""
    text = _REPR.repr(value)
    return text if len(text) <= ECHO_MAX else text[: ECHO_MAX - 3] + "..."


def shown(value: Any) -> str:
    """``value`` as a name in a message (``(id 100001)``, an account key): as it is when it is short
    printable text, else :func:`echo` (quoted, escaped, cut), so a message stays one short line."""
    if isinstance(value, str) and value.isprintable() and len(value) <= ECHO_MAX:
        return value
    return echo(value)


def ad_account_id(value: str) -> str:
    """``value`` in the Graph API's form: ``2002`` and ``act_2002`` are one account (as
    META_AD_ACCOUNT_IDS, META_ACCOUNTS_FILE and ``--account`` take them); ValueError otherwise."""
    account = value if value.startswith("act_") else f"act_{value}"
    if not AD_ACCOUNT_ID.fullmatch(account):
        raise ValueError(f"{echo(value)} is not an ad account id ({AD_ACCOUNT_FORM})")
    return account


def utf8_text(data: bytes) -> str:
    """``data`` decoded as UTF-8; ValueError naming the first bad byte and its line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ValueError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} column {column}") from None


def unicode_text(value: str) -> str:
    """``value`` if it can be written out as UTF-8. JSON's ``\\ud800`` escapes decode to lone
    surrogates, which no file, log or terminal can take: printing one fails."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode text (a lone surrogate at character {exc.start + 1})") from None
    return value
