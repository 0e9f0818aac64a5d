"""The calendar core: units, slots, bookings and every change to them, with history and outbox. May import: sweden."""
