"""Terminology over the hub's own conformance resources (profiles/).

$lookup, $validate-code, $expand, `:in` expansion and care-product aliases.

Pure functions over a loaded ProfileSet; no database, no web framework, no terminology server.
"""
