"""`make bench`: speed and memory figures of the producer on this machine (not part of make test)."""
