"""Booking rules a clinic sets per time type (who may book, how soon and how far ahead, how many,
until when a change is allowed, whether a message may be written, the preparation text), per
consumer (until when it may cancel), and per unit (the care unit holding the medical
responsibility, and whether it publishes to the engagement index yet); the booking remembers the
healthcare_facility_med it was made with.

Revision ID: 0005_booking_rules
Revises: 0004_set_wise_slot_checks
"""

from alembic import op

revision = "0005_booking_rules"
down_revision = "0004_set_wise_slot_checks"

UPGRADE = """
ALTER TABLE time_type
    -- false: bookable only through an invitation (kallelse) or by staff
    ADD COLUMN self_booking boolean NOT NULL DEFAULT true,
    -- a resident is neither offered nor may book a slot starting sooner than this
    ADD COLUMN min_lead interval NOT NULL DEFAULT interval '0' CHECK (min_lead >= interval '0'),
    -- ... nor one starting later than this from now (NULL: no limit)
    ADD COLUMN horizon interval CHECK (horizon > interval '0'),
    -- upcoming bookings one resident may hold of this time type at the unit (NULL: no limit)
    ADD COLUMN max_active_per_resident integer CHECK (max_active_per_resident > 0),
    -- NULL: the unit's change_deadline and message_allowed
    ADD COLUMN change_deadline interval CHECK (change_deadline >= interval '0'),
    ADD COLUMN message_allowed boolean,
    -- the preparation text shown with every free time and booking of this type (plain text or DocBook)
    ADD COLUMN purpose text;

ALTER TABLE care_unit
    -- the care unit (vårdenhet) holding the medical responsibility: MakeBooking's healthcare_facility_med
    ADD COLUMN medical_unit_hsa_id text CHECK (medical_unit_hsa_id = upper(medical_unit_hsa_id)),
    ADD COLUMN medical_unit_name text,
    -- false: not yet live in 1177, so no engagement-index posts are written for it
    ADD COLUMN publish_to_ei boolean NOT NULL DEFAULT true;

-- A consumer (e.g. Egen provhantering) allowed to cancel and rebook at a unit until another
-- deadline than residents have (0: until the start).
CREATE TABLE consumer_rule (
    unit_hsa_id     text NOT NULL REFERENCES care_unit ON DELETE CASCADE ON UPDATE CASCADE,
    consumer_hsa_id text NOT NULL CHECK (consumer_hsa_id = upper(consumer_hsa_id)),
    change_deadline interval NOT NULL CHECK (change_deadline >= interval '0'),
    PRIMARY KEY (unit_hsa_id, consumer_hsa_id)
);

ALTER TABLE booking ADD COLUMN healthcare_facility_med text;
"""

DOWNGRADE = """
ALTER TABLE booking DROP COLUMN healthcare_facility_med;
DROP TABLE consumer_rule;
ALTER TABLE care_unit DROP COLUMN medical_unit_hsa_id, DROP COLUMN medical_unit_name, DROP COLUMN publish_to_ei;
ALTER TABLE time_type DROP COLUMN self_booking, DROP COLUMN min_lead, DROP COLUMN horizon,
    DROP COLUMN max_active_per_resident, DROP COLUMN change_deadline, DROP COLUMN message_allowed,
    DROP COLUMN purpose;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
