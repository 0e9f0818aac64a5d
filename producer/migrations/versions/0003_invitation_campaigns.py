"""Invitation campaigns: a screening call invites each resident once per campaign, however often
its batch is loaded again.

Revision ID: 0003_invitation_campaigns
Revises: 0002_ei_delivery
"""

from alembic import op

revision = "0003_invitation_campaigns"
down_revision = "0002_ei_delivery"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE booking ADD COLUMN campaign text;"
        " CREATE UNIQUE INDEX booking_campaign_resident ON booking (unit_hsa_id, campaign, subject_of_care)"
        " WHERE campaign IS NOT NULL;"
    )


def downgrade() -> None:
    op.execute("DROP INDEX booking_campaign_resident; ALTER TABLE booking DROP COLUMN campaign;")
