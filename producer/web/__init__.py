"""The clinic staff's web page (/staff/) and the one Flask application that serves it with the /admin
API: login and sessions, week and day views, bookings, invitations, sick days, schedules. A channel:
every change goes through producer.staff and producer.calendar. May import: admin_api, staff,
loading, calendar, platform, sweden."""
