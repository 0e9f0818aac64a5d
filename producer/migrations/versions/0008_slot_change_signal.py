"""Every change of the slot table tells listeners which care units it touched: a NOTIFY on the
channel `tidbok_slots` with the unit's HSA-id, sent when the changing transaction commits (never for
one rolled back). The server workers keep free slots in memory (producer.interactions.free_slots)
and drop a unit's entries when its notice arrives.

Statement-level triggers with transition tables, so a load of a million slots notifies once per
unit, not once per row, and every path that writes slots (the calendar core, the loader, a unit's
removal by cascade) is covered without being told. PostgreSQL folds identical notices of one
transaction into one.

Revision ID: 0008_slot_change_signal
Revises: 0007_ep_offers
"""

from alembic import op

revision = "0008_slot_change_signal"
down_revision = "0007_ep_offers"

CHANNEL = "tidbok_slots"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION slot_changed_new() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', u) FROM (SELECT DISTINCT unit_hsa_id AS u FROM changed_new) x;
            RETURN NULL;
        END $$;
        CREATE FUNCTION slot_changed_old() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', u) FROM (SELECT DISTINCT unit_hsa_id AS u FROM changed_old) x;
            RETURN NULL;
        END $$;
        CREATE FUNCTION slot_changed_both() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', u)
            FROM (SELECT unit_hsa_id AS u FROM changed_new UNION SELECT unit_hsa_id FROM changed_old) x;
            RETURN NULL;
        END $$;
        CREATE TRIGGER slot_inserted AFTER INSERT ON slot REFERENCING NEW TABLE AS changed_new
            FOR EACH STATEMENT EXECUTE FUNCTION slot_changed_new();
        CREATE TRIGGER slot_deleted AFTER DELETE ON slot REFERENCING OLD TABLE AS changed_old
            FOR EACH STATEMENT EXECUTE FUNCTION slot_changed_old();
        CREATE TRIGGER slot_updated AFTER UPDATE ON slot REFERENCING NEW TABLE AS changed_new OLD TABLE AS changed_old
            FOR EACH STATEMENT EXECUTE FUNCTION slot_changed_both();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER slot_updated ON slot;
        DROP TRIGGER slot_deleted ON slot;
        DROP TRIGGER slot_inserted ON slot;
        DROP FUNCTION slot_changed_both();
        DROP FUNCTION slot_changed_old();
        DROP FUNCTION slot_changed_new();
        """
    )
