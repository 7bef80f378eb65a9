"""Ingest: source bytes -> adapter (adapters/) -> the FHIR write path, over HTTP, MLLP and the CLI (README.md)."""
