"""The clinics' JSON API under /admin: loading schedules, invitations and staff actions over HTTP."""
