"""Health and readiness answers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HealthOut(BaseModel):
    status: str = Field(examples=["ok"])
    version: str = Field(examples=["0.1.0"])
    pid: int = Field(description="The answering server process (one of `--workers`).",
                     examples=[4242])


class ReadyOut(BaseModel):
    status: str = Field(examples=["ready"])
    checks: dict[str, str] = Field(
        description="Each check and `ok`, or what is wrong.",
        examples=[{"database": "ok", "migrations": "ok", "jobs": "ok", "shutdown": "ok"}])
