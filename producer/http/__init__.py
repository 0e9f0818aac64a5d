"""Servers (granian, gunicorn mTLS), the one router (SOAP, /admin, probes), caller identity. May import: all but cli."""
