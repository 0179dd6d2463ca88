"""User tokens: JWTs from the deployment's auth system, verified with a secret or public key.

Only the configured algorithm family is accepted, so ``alg: none`` and algorithm-confusion
tokens (an HS256 token signed with the public key) fail like any bad signature.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from coinpurse.core.errors import Unauthorized

log = logging.getLogger("coinpurse.auth")
USER_ID_RE = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")
LEEWAY_S = 30
VERIFIED_MAX = 10_000  # tokens remembered per process (the set starts over when full)
ROLES = ("user", "merchant", "admin", "auditor")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a user token speaks for: the user, their role, and whether they passed 2FA."""

    user_id: str
    role: str = "user"
    mfa: bool = False
    session_id: str | None = None  # built-in sign-in: its refresh family (the ``sid`` claim)


class TokenVerifier:
    def __init__(
        self,
        *,
        secret: str | None,
        public_key: str | None,
        issuer: str | None,
        audience: str | None,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._key: Any = None
        self._algorithms: list[str] = []
        # Verifying a signature and its claims costs a read request about a tenth of its CPU;
        # the same token comes back with every request of a session. A token verified once
        # stays valid until its ``exp`` (plus leeway): nothing else in it depends on time.
        self._verified: dict[str, tuple[Principal, float]] = {}
        if public_key:
            loaded = load_pem_public_key(public_key.encode())
            if isinstance(loaded, rsa.RSAPublicKey):
                self._algorithms = ["RS256", "RS384", "RS512", "PS256"]
            elif isinstance(loaded, ec.EllipticCurvePublicKey):
                self._algorithms = ["ES256", "ES384", "ES512"]
            else:
                raise ValueError("COINPURSE_JWT_PUBLIC_KEY must be an RSA or EC public key")
            self._key = loaded
        elif secret:
            self._algorithms = ["HS256"]
            self._key = secret

    @property
    def configured(self) -> bool:
        return self._key is not None

    def user_id(self, token: str) -> str:
        """Return the token's ``sub``, or raise Unauthorized."""
        return self.principal(token).user_id

    def principal(self, token: str) -> Principal:
        """Verify the token; its ``role`` claim (default user) and ``mfa``/``amr`` claims."""
        hit = self._verified.get(token)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        found, valid_until = self._verify(token)
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (found, valid_until)
        return found

    def _verify(self, token: str) -> tuple[Principal, float]:
        if not self.configured:
            raise Unauthorized("user tokens cannot be verified: no JWT key is configured")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_S,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError as exc:
            # The codec's own words stay in the log: they are not ours to promise, and they
            # tell a prober which check failed.
            log.debug("token refused: %s: %s", type(exc).__name__, exc)
            raise Unauthorized("the token is not valid") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not USER_ID_RE.match(sub):
            raise Unauthorized("the token's sub is not a valid user id")
        if claims.get("typ", "access") != "access":
            raise Unauthorized("not an access token")
        role = claims.get("role", "user")
        if role not in ROLES:
            role = "user"  # an unknown role grants nothing beyond a user's own wallet
        amr = claims.get("amr")
        mfa = claims.get("mfa") is True or (
            isinstance(amr, list) and any(m in ("mfa", "otp") for m in amr))
        sid = claims.get("sid")
        return (Principal(user_id=sub, role=role, mfa=mfa,
                          session_id=sid if isinstance(sid, str) and len(sid) <= 64 else None),
                float(claims["exp"]) + LEEWAY_S)


def issue_hs256(secret: str, user_id: str, *, ttl_s: int = 86_400, **claims: Any) -> str:
    """Sign a user token; for the demo and tests (a real deployment's auth system does this)."""
    now = datetime.now(UTC)
    payload = {"sub": user_id, "iat": now, "exp": now + timedelta(seconds=ttl_s)}
    payload.update({k: v for k, v in claims.items() if v is not None})
    return jwt.encode(payload, secret, algorithm="HS256")
