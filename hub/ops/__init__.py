"""Operations: health/readiness, Prometheus metrics, structured logs, rate limiting."""
