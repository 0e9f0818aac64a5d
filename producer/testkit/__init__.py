"""Integration testers' kit: replay and record SOAP fixtures, Postman/SoapUI collections. May import: soap, sweden."""
