"""The /admin JSON API: a channel that calls staff and loading. May import: staff, loading, platform, sweden."""
