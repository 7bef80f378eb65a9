"""Authentication (JWT bearer tokens, SMART backend services), the access policy, and the NEN 7513 audit trail."""
