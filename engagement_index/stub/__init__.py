"""An EI stub for testers, on the producer's SOAP engine. May import: producer.soap, producer.sweden,
producer.http (its serving), producer.platform, engagement_index.

A stand-alone engagement index (EI) stub that behaves like the real one (skltp/ei) towards a producer.

Run it with one command (granian, WSGI, one worker: the state lives in memory in that process)::

    python -m engagement_index.stub

Environment
    TIDBOK_EI_STUB_HOST            127.0.0.1
    TIDBOK_EI_STUB_PORT            8081
    TIDBOK_EI_HSA_ID               5565594230   the EI's own id: the LogicalAddress it accepts, the owner it sets
    TIDBOK_EI_ALTERNATIVE_HSA_ID   (none)       a second accepted LogicalAddress (ei.alternative.hsa.id)
    TIDBOK_EI_RESERVED_HSA_IDS     the EI id    comma list refused as logicalAddress (EI005) / sourceSystem (EI006)

Endpoints (SOAP 1.1, RIVTABP21, contracts/engagementindex_1.0)
    POST /Update/1/rivtabp21        validated like the real EI, then stored; answers ResultCode OK
    POST /FindContent/1/rivtabp21   search by registeredResidentIdentification + serviceDomain (+ optional fields)
    GET  /<Op>/1/rivtabp21?wsdl     the WSDL with soap:address pointing here; XSDs at their relative paths
    GET  /health                    "ok"

Update checks, in the real EI's order; each failure is a SOAP 1.1 fault, HTTP 500, faultstring "EIxxx: …"
    EI001  not well-formed, not SOAP 1.1, wrong body element, or schema-invalid (our rendition of the XSDs)
    EI003  LogicalAddress header is not TIDBOK_EI_HSA_ID (or the alternative)
    EI000  0 or more than 1000 engagementTransactions
    then per transaction, in order: EI002 same key as an earlier one in the call; EI004 leading/trailing white
    space in a mandatory field; EI005/EI006 reserved id as logicalAddress/sourceSystem; EI004 mandatory field
    missing or empty, field too long, mostRecentContent/creationTime/updateTime not a real yyyyMMddHHmmss.
    Messages keep the real EI's wording, typos included ("error messge", "is to long"), so a producer can be
    tested against what it will really see.

Storage (in memory, thread-safe): keyed by registeredResidentIdentification, serviceDomain, categorization,
logicalAddress, businessObjectInstanceIdentifier, sourceSystem, dataController, owner, clinicalProcessInterestId.
owner is always set to the EI's id. In one call all deletes run before all saves; a save is an upsert
(creationTime on create, updateTime when mostRecentContent changes); an identical resend changes nothing;
deleting a missing key is harmless. Every applied transaction is logged with a monotonic sequence number.
Unlike the real EI, the store is updated before the answer is sent (the real one queues and stores later).

Test control (JSON, same port)
    POST /_stub/control  {"mode": "ok"|"down"|"slow"|"fault", "delay_seconds": 3, "fault_code": "EI000",
                          "remaining": N, "operations": ["Update"]}
                         down: HTTP 503, empty body (an EI unreachable behind VP). slow: the call is handled,
                         then the answer waits delay_seconds. fault: the given EI fault, nothing stored.
                         remaining: calls affected before reverting to ok (omitted/null: until changed).
                         operations: which SOAP operations are affected (default ["Update"]).
    GET  /_stub/control  the current control setting
    POST /_stub/reset    empty store, log and counters; control back to ok
    GET  /_stub/state    {"posts": [...], "update_calls": n, "find_content_calls": n, "log": [{"seq", "call",
                          "key", "deleteFlag", "mostRecentContent", "effect"}], "control": {...}}

See README.md in this directory for examples.
"""
