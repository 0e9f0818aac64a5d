"""Personnummer, HSA-ids and Stockholm wall time on the wire. May import nothing of tidbok."""
