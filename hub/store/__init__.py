"""Persistence: resources as JSON bytes with version history, search index rows, outbox, audit trail."""
