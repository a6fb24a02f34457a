"""Rules every input shares, whoever hands it in (an environment variable, a YAML or snapshot
file, the Graph API, a command-line argument): the form of an ad account id, and how an error
message shows the bad value.

No Dagster, pandas or pydantic here: the engine, the settings and the command line all import it.
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

# [0-9], never \d or str.isdigit: those also take full-width "１２" and Arabic-Indic "١٢", which
# Meta never sends and int() would quietly read as 12.
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


def ad_account_id(value: str) -> str:
    """``value`` in the Graph API's form: ``2002`` and ``act_2002`` are one account (as
    META_AD_ACCOUNT_IDS, META_ACCOUNTS_FILE and ``--account`` take them); ValueError otherwise."""
    account = value if value.startswith("act_") else f"act_{value}"
    if not AD_ACCOUNT_ID.fullmatch(account):
        raise ValueError(f"{echo(value)} is not an ad account id ({AD_ACCOUNT_FORM})")
    return account
