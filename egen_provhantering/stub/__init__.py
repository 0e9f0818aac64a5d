"""An Egen provhantering (EP) OfferInteraction stub for testers. May import: producer.soap, producer.sweden,
producer.http, producer.platform, egen_provhantering.

A stand-alone stand-in for EP's OfferInteraction.svc (seed 000) speaking our rendition of its contract
(contracts/offerinteraction_1.0), enforcing the rules the seed states. Run it with one command (granian,
WSGI, one worker: the state lives in memory in that process)::

    python -m egen_provhantering.stub [--port 8082] [--tls-cert C --tls-key K [--client-ca CA]]

Endpoints
    POST /OfferExternalService/OfferInteraction.svc   AddGivenOfferByExternalSystem, UndoGivenOfferByExternalSystem
    GET  /OfferExternalService/OfferInteraction.svc?wsdl   the WSDL (its XSD beside it)
    GET  /health                                      "ok"
    /_stub/config, /_stub/control, /_stub/given[/<pnr>], /_stub/state, /_stub/requests, /_stub/reset (JSON)

See README.md in this directory.
"""
