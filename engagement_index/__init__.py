"""Engagement index (EI): publisher, net transactions, client, settings, outbox admin, sweeper. May import: producer."""
