"""Sessions of the staff page (/staff/): a row per login, found by the digest of its cookie, so a
logout or an expiry ends it in every worker at once, and a stolen database dump holds no usable
cookie. The row carries the form token (CSRF) of the session.

Revision ID: 0006_staff_sessions
Revises: 0005_booking_rules
"""

from alembic import op

revision = "0006_staff_sessions"
down_revision = "0005_booking_rules"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE staff_session (
            token_digest bytea PRIMARY KEY,
            staff_hsa_id text NOT NULL,
            csrf_token text NOT NULL,
            how text NOT NULL,               -- password or certificate
            created_at timestamptz NOT NULL DEFAULT now(),
            last_used_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX staff_session_expiry ON staff_session (expires_at);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE staff_session")
