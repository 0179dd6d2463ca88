"""GraphQL's settings: the caps that keep every query's work bounded."""

from __future__ import annotations

from pydantic import Field

from coinpurse.core.settings import CoreSettings


class GraphQLSettings(CoreSettings):
    # Schema introspection (and so tools that read the schema). On by default, for
    # development; switch it off in production if the schema is not for everyone to read.
    graphql_introspection: bool = True
    # Nesting depth of an operation (fragments counted where they are spread).
    graphql_depth_max: int = Field(default=10, ge=2, le=50)
    # Aliases in one document: each alias is one more resolution of a field.
    graphql_aliases_max: int = Field(default=15, ge=1, le=1000)
    # Tokens in one document: bounds what the parser reads before anything runs.
    graphql_tokens_max: int = Field(default=2000, ge=100, le=100_000)
