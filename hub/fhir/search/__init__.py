"""Search: parse FHIR query parameters into a SearchQuery, run it as indexed SQL, page it stably."""
