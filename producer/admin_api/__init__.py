"""The /admin JSON API, a channel: parse, call staff/ and loading/, answer. May import: staff, loading, platform."""
