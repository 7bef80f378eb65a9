"""The FHIR R4 server: interactions, search, bundles, validation, capability statement."""
