"""SOAP engine: envelope, faults, contract, codec, WSDLs, hardened XML, the request pipeline. May import: sweden."""
