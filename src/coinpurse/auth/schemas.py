"""Request and response shapes of sign-in and ``/api/v1/me``: validation, the OpenAPI
document and the answers all come from these models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from coinpurse.auth.accounts import PASSWORD_MIN
from coinpurse.core.types import StrictModel, Timestamp, clean_text

Email = Annotated[str, StringConstraints(min_length=3, max_length=254), clean_text]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Code = Annotated[str, StringConstraints(min_length=6, max_length=10, pattern=r"^[0-9]+$")]
Recovery = Annotated[str, StringConstraints(min_length=1, max_length=32)]
RawToken = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RegisterIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "alice@example.com", "password": "correct horse battery staple"}
    ]})

    email: Email
    password: Password = Field(description=f"At least {PASSWORD_MIN} characters.")
    account_type: Literal["user", "merchant"] = Field(
        default="user", description="`merchant` accounts can also sell products (the shop).")


class LoginIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"email": "alice@example.com",
         "password": "correct horse battery staple",
         "totp_code": "123456"}
    ]})

    email: Email
    password: Password
    totp_code: Code | None = Field(default=None, description="When 2FA is on.")
    recovery_code: Recovery | None = Field(default=None, description="Instead of totp_code.")


class RefreshIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"refresh_token": "rt_Zq3sV9x2Yw8uT1pL0kJhG6fD4sA7qW2e"}
    ]})

    refresh_token: RawToken


class CodeIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"code": "123456"}
    ]})

    code: Code


class DisableIn(StrictModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"totp_code": "123456"}
    ]})

    totp_code: Code | None = None
    recovery_code: Recovery | None = None


class Out(BaseModel):
    """An answer, read from the domain's objects (``model_validate(obj)``)."""

    model_config = ConfigDict(from_attributes=True)


class UserOut(Out):
    id: str
    email: str
    role: str
    totp_enabled: bool
    created_at: Timestamp


class MeOut(Out):
    """Fields that do not apply (an external auth system's token) are left out."""

    id: str
    role: str
    mfa: bool = Field(description="Whether this token's session passed two-factor sign-in.")
    email: str | None = Field(default=None, description="Built-in accounts only.")
    totp_enabled: bool | None = None
    created_at: Timestamp | None = None


class EnrollOut(Out):
    secret: str = Field(description="Base32 TOTP secret for an authenticator app.")
    otpauth_uri: str
    qr_code: str = Field(description="The otpauth URI as a QR code: an SVG `data:` URI, made "
                         "by Coinpurse itself (the secret never leaves the server).")


class ConfirmOut(Out):
    totp_enabled: bool
    recovery_codes: list[str] = Field(description="Single-use; shown this once.")


class DisableOut(Out):
    totp_enabled: bool


class AcceptedOut(Out):
    status: str
    detail: str


class SessionOut(Out):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    mfa: bool = Field(description="Whether this session passed two-factor authentication.")
    user: UserOut


class BrowserSessionOut(Out):
    """A browser's sign-in: the tokens are in httpOnly cookies, never in the answer."""

    user: UserOut
    mfa: bool = Field(description="Whether this sign-in passed two-factor authentication.")
    expires_in: int = Field(description="Seconds until the access cookie needs a refresh.")
