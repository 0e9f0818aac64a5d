"""EI delivery: what each booking last published, and the outbox's delivery state.

booking.ei_post is the post the outbox was last told about (the "before" of the next change, and
what the sweeper removes when the start passes or an invitation expires, at ei_expires_at).

Revision ID: 0002_ei_delivery
Revises: 0001_calendar
"""

from alembic import op

revision = "0002_ei_delivery"
down_revision = "0001_calendar"

UPGRADE = """
ALTER TABLE booking ADD COLUMN ei_post jsonb, ADD COLUMN ei_expires_at timestamptz;
UPDATE booking b SET ei_post = last.after
FROM (SELECT DISTINCT ON (booking_pk) booking_pk, after FROM ei_outbox ORDER BY booking_pk, id DESC) last
WHERE last.booking_pk = b.pk;
UPDATE booking b SET ei_expires_at = least(
    (SELECT s.starts_at FROM slot s WHERE s.booking_pk = b.pk),
    CASE WHEN b.kind <> 'booking' THEN b.valid_until END)
WHERE b.ei_post IS NOT NULL;
CREATE INDEX booking_ei_expiry ON booking (ei_expires_at) WHERE ei_post IS NOT NULL;

ALTER TABLE ei_outbox
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    ADD COLUMN parked_at timestamptz,
    ADD COLUMN parked_reason text;
DROP INDEX ei_outbox_pending;
CREATE INDEX ei_outbox_pending ON ei_outbox (id) INCLUDE (booking_pk) WHERE published_at IS NULL AND parked_at IS NULL;
-- Published rows stay as history, so the queue must only ever be read through the pending index:
-- with a full index on id, a plan prepared while most rows were pending walks every published row
-- on each claim. ids come from a sequence and stay unique without the constraint.
ALTER TABLE ei_outbox DROP CONSTRAINT ei_outbox_pkey;
CREATE INDEX ei_outbox_parked ON ei_outbox (booking_pk) WHERE parked_at IS NOT NULL AND published_at IS NULL;
"""

DOWNGRADE = """
ALTER TABLE ei_outbox ADD PRIMARY KEY (id);
DROP INDEX ei_outbox_parked;
DROP INDEX ei_outbox_pending;
CREATE INDEX ei_outbox_pending ON ei_outbox (id) WHERE published_at IS NULL;
ALTER TABLE ei_outbox DROP COLUMN attempts, DROP COLUMN last_error, DROP COLUMN parked_at, DROP COLUMN parked_reason;
DROP INDEX booking_ei_expiry;
ALTER TABLE booking DROP COLUMN ei_post, DROP COLUMN ei_expires_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
