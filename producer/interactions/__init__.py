"""The eleven crm:scheduling contracts: request, calendar, response. May import: calendar, soap, platform, sweden."""
