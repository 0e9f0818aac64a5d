"""The /admin JSON API on Flask (flask-openapi3: pydantic models validate each request and generate
the OpenAPI description), a channel that calls staff and loading. May import: staff, loading,
calendar, platform, sweden."""
