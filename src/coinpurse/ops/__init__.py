"""Running Coinpurse in production: health and readiness, metrics, tracing."""
