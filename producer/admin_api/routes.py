"""The /admin endpoints: each declared once, for routing and for the OpenAPI description."""

from __future__ import annotations

from producer.admin_api import load_routes, staff_routes
from producer.admin_api.route import Route

ROUTES: list[Route] = [*load_routes.ROUTES, *staff_routes.ROUTES]
