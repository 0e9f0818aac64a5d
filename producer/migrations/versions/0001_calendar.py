"""The calendar: care units and their catalogues, slots, bookings, their history and the EI outbox.

Revision ID: 0001_calendar
Revises:
"""

from alembic import op

revision = "0001_calendar"
down_revision = None

UPGRADE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE care_unit (
    hsa_id          text PRIMARY KEY CHECK (hsa_id = upper(hsa_id)),
    name            text NOT NULL,
    message_allowed boolean NOT NULL DEFAULT false,
    -- a resident may cancel or rebook until this long before the start
    change_deadline interval NOT NULL DEFAULT interval '24 hours',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE performer (
    unit_hsa_id text NOT NULL REFERENCES care_unit ON DELETE CASCADE,
    hsa_id      text NOT NULL CHECK (hsa_id = upper(hsa_id)),
    title       text,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    PRIMARY KEY (unit_hsa_id, hsa_id)
);

CREATE TABLE resource (
    unit_hsa_id text NOT NULL REFERENCES care_unit ON DELETE CASCADE,
    resource_id text NOT NULL,
    name        text NOT NULL,
    PRIMARY KEY (unit_hsa_id, resource_id)
);

CREATE TABLE care_type (
    unit_hsa_id text NOT NULL REFERENCES care_unit ON DELETE CASCADE,
    code        text NOT NULL,
    name        text NOT NULL,
    PRIMARY KEY (unit_hsa_id, code)
);

CREATE TABLE time_type (
    unit_hsa_id      text NOT NULL REFERENCES care_unit ON DELETE CASCADE,
    code             text NOT NULL,
    name             text NOT NULL,
    duration_minutes integer NOT NULL CHECK (duration_minutes > 0),
    care_type_code   text,
    PRIMARY KEY (unit_hsa_id, code),
    FOREIGN KEY (unit_hsa_id, care_type_code) REFERENCES care_type (unit_hsa_id, code)
);

-- A booking of time_type_code at unit_hsa_id may be moved to (or, for an invitation, booked at)
-- alternative_hsa_id. The unit itself is implied when it offers the time type.
CREATE TABLE unit_alternative (
    unit_hsa_id        text NOT NULL REFERENCES care_unit ON DELETE CASCADE,
    time_type_code     text NOT NULL,
    alternative_hsa_id text NOT NULL REFERENCES care_unit ON DELETE CASCADE,
    PRIMARY KEY (unit_hsa_id, time_type_code, alternative_hsa_id),
    FOREIGN KEY (unit_hsa_id, time_type_code) REFERENCES time_type (unit_hsa_id, code)
);

CREATE TABLE booking (
    pk              bigserial PRIMARY KEY,
    booking_id      text NOT NULL,
    unit_hsa_id     text NOT NULL REFERENCES care_unit,
    kind            text NOT NULL CHECK (kind IN ('booking', 'timed_invitation', 'open_invitation')),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled', 'expired')),
    subject_of_care text NOT NULL,
    first_name      text,
    middle_name     text,
    last_name       text,
    phone           text,
    email           text,
    address         text,
    coaddress       text,
    reason          text,
    purpose         text,
    notification    text,
    time_type_code  text NOT NULL,
    care_type_code  text,
    -- open invitations: the business date shown until a time is booked
    invitation_date date,
    valid_until     timestamptz,
    cancel_message  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (unit_hsa_id, time_type_code) REFERENCES time_type (unit_hsa_id, code)
);
CREATE UNIQUE INDEX booking_active_id ON booking (booking_id) WHERE status = 'active';
CREATE INDEX booking_by_id ON booking (booking_id);
CREATE INDEX booking_by_resident ON booking (subject_of_care, unit_hsa_id) WHERE status = 'active';

CREATE TABLE slot (
    id               bigserial PRIMARY KEY,
    unit_hsa_id      text NOT NULL REFERENCES care_unit ON DELETE CASCADE,
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    time_type_code   text NOT NULL,
    care_type_code   text,
    performer_hsa_id text,
    resource_id      text,
    -- the booking holding this slot; NULL = free. Taken with a conditional UPDATE.
    booking_pk       bigint UNIQUE REFERENCES booking,
    CHECK (ends_at > starts_at),
    FOREIGN KEY (unit_hsa_id, time_type_code) REFERENCES time_type (unit_hsa_id, code),
    FOREIGN KEY (unit_hsa_id, performer_hsa_id) REFERENCES performer (unit_hsa_id, hsa_id),
    FOREIGN KEY (unit_hsa_id, resource_id) REFERENCES resource (unit_hsa_id, resource_id),
    -- safety net: one performer is never in two overlapping slots
    EXCLUDE USING gist (unit_hsa_id WITH =, performer_hsa_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
        WHERE (performer_hsa_id IS NOT NULL)
);
-- availability reads free slots of one unit in a time window: covering, so index-only scans do
CREATE INDEX slot_free_by_unit_start ON slot (unit_hsa_id, starts_at)
    INCLUDE (ends_at, id, time_type_code, care_type_code, performer_hsa_id, resource_id)
    WHERE booking_pk IS NULL;
CREATE INDEX slot_by_unit_start ON slot (unit_hsa_id, starts_at);

-- Who did what to a booking, when and through which channel (follow-up by staff).
CREATE TABLE booking_event (
    id           bigserial PRIMARY KEY,
    booking_pk   bigint NOT NULL REFERENCES booking,
    at           timestamptz NOT NULL DEFAULT now(),
    action       text NOT NULL,
    channel      text NOT NULL,
    actor_type   text,
    actor_id     text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX booking_event_by_booking ON booking_event (booking_pk, id);

-- One row per change of a booking's engagement-index post, written in the booking's transaction.
-- before/after: {subject_of_care, unit, booking_id, kind: booking|invitation, most_recent_content}
-- or NULL when there was/is no post.
CREATE TABLE ei_outbox (
    id           bigserial PRIMARY KEY,
    booking_pk   bigint NOT NULL REFERENCES booking,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    reason       text NOT NULL,
    before       jsonb,
    after        jsonb,
    published_at timestamptz,
    CHECK (before IS NOT NULL OR after IS NOT NULL)
);
CREATE INDEX ei_outbox_pending ON ei_outbox (id) WHERE published_at IS NULL;
CREATE INDEX ei_outbox_by_booking ON ei_outbox (booking_pk, id);
"""

DOWNGRADE = """
DROP TABLE ei_outbox, booking_event, slot, booking, unit_alternative, time_type, care_type,
    resource, performer, care_unit;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
