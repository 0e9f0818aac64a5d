"""Engagement index (EI) integration: the outbox that records every booking change for EI."""
