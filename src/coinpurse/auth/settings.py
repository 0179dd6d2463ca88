"""Who may call: user tokens (an outside auth system's, or Coinpurse's own accounts), keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from coinpurse.core.settings import CoreSettings


class AuthSettings(CoreSettings):
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # external: verify tokens of an existing auth system; builtin: Coinpurse's own accounts.
    auth: Literal["external", "builtin"] = "external"
    access_token_ttl_s: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_s: int = Field(default=30 * 86_400, ge=3600, le=365 * 86_400)
    key_rotation_grace_s: int = Field(default=86_400, ge=0, le=30 * 86_400)

    @field_validator("jwt_public_key")
    @classmethod
    def _load_public_key(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if "-----BEGIN" in value:
            return value.replace("\\n", "\n")
        path = Path(value)
        if path.is_file():
            return path.read_text()
        raise ValueError("must be a PEM public key or the path of a file holding one")

    @model_validator(mode="after")
    def _check_auth(self) -> AuthSettings:
        if self.auth == "builtin" and self.jwt_secret is None:
            raise ValueError("COINPURSE_AUTH=builtin signs its own tokens: set "
                             "COINPURSE_JWT_SECRET (at least 32 random characters)")
        return self
