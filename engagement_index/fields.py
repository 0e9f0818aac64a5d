"""The fields of an EI post (EngagementType) that the index and the publisher must agree on.

One place for the stub (engagement_index.stub), which applies the real EI's rules, and for the
publisher, which must never send a post those rules refuse.
"""

from __future__ import annotations

# The post's identity (skltp/ei Engagement id = SHA-256 over these, compared exactly as sent), in
# the order of the stub's keys and log lines.
KEY_FIELDS = (
    "registeredResidentIdentification",
    "serviceDomain",
    "categorization",
    "logicalAddress",
    "businessObjectInstanceIdentifier",
    "sourceSystem",
    "dataController",
    "owner",
    "clinicalProcessInterestId",
)
# What every post must carry (EI005), in schema order: the key but owner, which EI sets itself.
MANDATORY_FIELDS = (
    "registeredResidentIdentification",
    "serviceDomain",
    "categorization",
    "logicalAddress",
    "businessObjectInstanceIdentifier",
    "clinicalProcessInterestId",
    "sourceSystem",
    "dataController",
)
# The longest value EI accepts (EI004), in the order EI checks them.
FIELD_LIMITS = {
    "registeredResidentIdentification": 32,
    "serviceDomain": 255,
    "categorization": 255,
    "logicalAddress": 64,
    "businessObjectInstanceIdentifier": 128,
    "clinicalProcessInterestId": 128,
    "sourceSystem": 64,
    "dataController": 64,
    "mostRecentContent": 14,
    "updateTime": 14,
    "creationTime": 14,
}
DATE_FIELDS = ("mostRecentContent", "updateTime", "creationTime")
