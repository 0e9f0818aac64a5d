"""`make chaos`: does the outbox lose or garble anything while processes and PostgreSQL fail? (tests/chaos/run.py)"""
