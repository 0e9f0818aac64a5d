"""Settings, consumers, database and breaker, logs and trace ids, metrics. May import: sweden, soap.scheduling."""
