"""tidbok: a RIV-TA crm:scheduling 1.1 producer over a PostgreSQL calendar."""
