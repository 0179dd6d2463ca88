"""``coinpurse config check``: the effective settings, each with where it came from, and
secrets masked (a pasted output must never leak a key)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url

from coinpurse.core.settings import PREFIX

MASK = "********"
_SECRET_NAME = re.compile(r"secret|password|token|private|_key$|key_secret|api_key",
                          re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Shown:
    variable: str
    value: str
    source: str  # "env" or "default"


def _mask_url(value: str) -> str:
    try:
        return make_url(value).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//[^@/]*@", "//***@", value)


def show_value(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        return _mask_url(raw) if "://" in raw and "@" in raw else MASK
    if isinstance(value, bool | int | float):
        return str(value)
    text = str(value)
    if name.endswith("_url"):
        return _mask_url(text)
    if _SECRET_NAME.search(name) and text:
        return MASK
    return text


def effective_settings(settings: BaseModel) -> list[Shown]:
    """Each setting as its variable would spell it: values parsed into objects (currency
    tables, tiers) are shown as the text they were read from."""
    shown = []
    fields = type(settings).model_fields
    for name in sorted(fields):
        variable = PREFIX + name.upper()
        source = "env" if variable in os.environ else "default"
        value = getattr(settings, name)
        if not isinstance(value, str | int | float | bool | SecretStr | type(None)):
            value = os.environ[variable] if source == "env" else fields[name].default
        shown.append(Shown(variable, show_value(name, value), source))
    return shown
