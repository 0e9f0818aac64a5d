"""The `tidbok` command, its process supervisor, demo data. May import: all of producer, and engagement_index."""
