"""Source formats -> FHIR R4 transaction Bundles. Pure functions: no I/O, no database, no clock.

Entry points: `adapters.registry` (format name / media type -> translate function) and `adapters.base`
(SourceMeta, Translation, Problem, AdapterError). See adapters/README.md for formats and identifier systems.
"""
