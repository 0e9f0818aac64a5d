"""Egen provhantering (EP): sampling offers a campaign gives residents, sent through an outbox.

ep_campaign holds what every resident's AddGivenOfferByExternalSystem of a campaign carries besides
the personnummer: the care unit giving it (AccessUnitID), who gives it (HCProfessional*), whether EP
notifies the resident, and which of the unit's offers in EP it is (UnitOfferID). ep_offer is the
outbox: one row per call (an add, or the undo of a withdrawal), written in the campaign's (or the
withdrawal's) transaction with the seven request fields as they are sent, so an undo repeats its
add exactly and a retry after a crash sends the same call. The publisher
(egen_provhantering.publisher) sends each resident's rows in id order, at least once.

A time type may name its EP offer (time_type.ep_unit_offer_id: a campaign for it gives that offer
unless the campaign names another); a consumer rule may name its consumer (consumer_rule.name:
"Egen provhantering"), so staff see who booked a time; the booking keeps the service consumer it
was made through (booking.consumer: the platform's original consumer, or the caller itself).

Revision ID: 0007_ep_offers
Revises: 0006_staff_sessions
"""

from alembic import op

revision = "0007_ep_offers"
down_revision = "0006_staff_sessions"

UPGRADE = """
ALTER TABLE time_type ADD COLUMN ep_unit_offer_id text CHECK (ep_unit_offer_id <> '');
ALTER TABLE consumer_rule ADD COLUMN name text;
ALTER TABLE booking ADD COLUMN consumer text;

CREATE TABLE ep_campaign (
    unit_hsa_id        text NOT NULL REFERENCES care_unit ON DELETE CASCADE ON UPDATE CASCADE,
    campaign           text NOT NULL,
    access_unit_id     text NOT NULL,
    unit_offer_id      text NOT NULL CHECK (unit_offer_id <> ''),
    hc_professional_id text NOT NULL,
    hc_first_name      text NOT NULL,
    hc_last_name       text NOT NULL,
    notify_resident    boolean NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    PRIMARY KEY (unit_hsa_id, campaign)
);

CREATE TABLE ep_offer (
    id                 bigserial,
    unit_hsa_id        text NOT NULL,
    campaign           text NOT NULL,
    resident           text NOT NULL,
    action             text NOT NULL CHECK (action IN ('add', 'undo')),
    booking_pk         bigint REFERENCES booking ON DELETE SET NULL,
    access_unit_id     text NOT NULL,
    unit_offer_id      text NOT NULL,
    hc_professional_id text NOT NULL,
    hc_first_name      text NOT NULL,
    hc_last_name       text NOT NULL,
    notify_resident    boolean NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by         text,
    -- pending: to be sent; sent: EP answered (outcome); parked: waits for staff (refused, or gave up);
    -- dropped: withdrawn before it was ever sent, so nothing was sent and nothing needs undoing
    state              text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'parked', 'dropped')),
    outcome            text CHECK (outcome IN ('given', 'already_given', 'undone', 'nothing_to_undo', 'refused',
                                               'technical')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT 'epoch',
    last_error         text,
    validation_errors  jsonb,
    sent_at            timestamptz,
    parked_at          timestamptz,
    FOREIGN KEY (unit_hsa_id, campaign) REFERENCES ep_campaign ON DELETE CASCADE ON UPDATE CASCADE
);
-- a campaign gives each resident its offer once, however often its list is loaded
CREATE UNIQUE INDEX ep_offer_once ON ep_offer (unit_hsa_id, campaign, resident) WHERE action = 'add';
-- the queue, read only through this index (as ei_outbox's: sent rows stay as history)
CREATE INDEX ep_offer_pending ON ep_offer (id) INCLUDE (resident, next_attempt_at) WHERE state = 'pending';
-- a resident's rows still to be sent: a later row waits for them (order per resident)
CREATE INDEX ep_offer_unsent ON ep_offer (resident, id) WHERE state = 'pending';
CREATE INDEX ep_offer_by_campaign ON ep_offer (unit_hsa_id, campaign, resident, id);
CREATE INDEX ep_offer_by_booking ON ep_offer (booking_pk) WHERE booking_pk IS NOT NULL;
"""

DOWNGRADE = """
DROP TABLE ep_offer, ep_campaign;
ALTER TABLE booking DROP COLUMN consumer;
ALTER TABLE consumer_rule DROP COLUMN name;
ALTER TABLE time_type DROP COLUMN ep_unit_offer_id;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
