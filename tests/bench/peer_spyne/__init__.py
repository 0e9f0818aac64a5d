"""The peer for `make bench`: GetAvailableTimeslots and MakeBooking of crm:scheduling 1.1 written on
spyne 2.14, the Python SOAP server a user would pick instead of tidbok. Spyne parses, validates,
dispatches and serializes; the database work is tidbok's own interaction and calendar code, over a
pool made as tidbok makes it, served by granian as the production server is. Benchmark code only:
it may import producer, and nothing in producer imports it."""
