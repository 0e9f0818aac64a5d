"""Slots name their unit, time type and performer by integer keys, and the booking a slot holds is
checked set-wise (issue 16: a first load of a million slots at 100,000 slots/s or more).

care_unit, time_type and performer get an integer ``id`` (identity, unique); slot holds
``unit_id``, ``time_type_id`` and ``performer_id`` instead of the HSA-id and code texts, and its
indexes hold those integers: a performer's index is ``(performer_id, starts_at)`` (the id names
the unit too). Care type and resource stay texts. The slot table is rebuilt with its fixed-width
columns first (no padding between them), keeping every id and its sequence. Readers that want the
texts join them, or read the view ``slot_named`` (the slot with ``unit_hsa_id``,
``time_type_code`` and ``performer_hsa_id``, as the table had them).

Everything 0004 guarantees holds, set-wise in the same triggers: a slot's time type and performer
are rows of the slot's own unit, its resource too; no performer or resource is in two
overlapping slots; what a slot names cannot be deleted (nor moved to another unit) while it does.
The booking a slot holds is checked the same way instead of by a foreign key, whose trigger
PostgreSQL queues for every inserted row even when ``booking_pk`` is NULL: a statement's new slots
once (and only if one is taken), a take by a row trigger (as the foreign key's check did), and a
booking held by a slot cannot be deleted, given another key or truncated away. 0008's notices of
changed units are kept (by unit key).

Measured on the 2-core reference machine (1,000,000 slots, 100 units x 5 performers x 50 days,
the whole ``tidbok load`` command, runs alternating with the text keys on a quiet machine; README,
Loading schedules, Speed): the write into slot 6.1 -> 4.2 s, the first load 11.0-11.5 -> 8.4-8.6 s
(with the loader's other changes of issue 16); heap and indexes 367 -> 223 MB (the performer index
105 -> 32 MB); availability's queries and MakeBooking as fast or faster. One covering index
instead of the two unit-start indexes saved another 0.6 s but made GetAvailableDates 2 % slower on
a calendar a third booked (it then reads the taken slots too), so both stay.

Revision ID: 0009_integer_slot_keys
Revises: 0008_slot_change_signal
"""

import importlib.util
from collections.abc import Callable
from pathlib import Path

from alembic import op

revision = "0009_integer_slot_keys"
down_revision = "0008_slot_change_signal"
CHANNEL = "tidbok_slots"  # 0008_slot_change_signal's

UPGRADE = r"""
ALTER TABLE care_unit ADD COLUMN id integer GENERATED ALWAYS AS IDENTITY UNIQUE;
ALTER TABLE time_type ADD COLUMN id integer GENERATED ALWAYS AS IDENTITY UNIQUE;
ALTER TABLE performer ADD COLUMN id integer GENERATED ALWAYS AS IDENTITY UNIQUE;

DROP TRIGGER slot_deleted_with_unit ON care_unit;
DROP TRIGGER slot_references_time_type_truncated ON time_type;
DROP TRIGGER slot_references_performer_truncated ON performer;
DROP TRIGGER slot_references_resource_truncated ON resource;
DROP TRIGGER slot_references_time_type ON time_type;
DROP TRIGGER slot_references_performer ON performer;
DROP TRIGGER slot_references_resource ON resource;
DROP TRIGGER slot_checked_update ON slot;
DROP TRIGGER slot_checked_insert ON slot;
DROP FUNCTION slot_unit_deleted(), slot_referenced_truncated(), slot_referenced_check(), slot_check_updated(),
    slot_check_inserted(), slot_check(slot_refs[]);
DROP TYPE slot_refs;

ALTER SEQUENCE slot_id_seq OWNED BY NONE;
ALTER TABLE slot RENAME TO slot_text_keys;
-- free the names the new table's constraints and indexes take
ALTER TABLE slot_text_keys
    DROP CONSTRAINT slot_pkey, DROP CONSTRAINT slot_booking_pk_fkey, DROP CONSTRAINT slot_check,
    DROP CONSTRAINT slot_at_most_a_day, ALTER COLUMN id DROP NOT NULL, ALTER COLUMN starts_at DROP NOT NULL,
    ALTER COLUMN ends_at DROP NOT NULL;
DROP INDEX slot_free_by_unit_start, slot_by_unit_start, slot_booking, slot_by_performer, slot_by_resource;

CREATE TABLE slot (
    id               bigint PRIMARY KEY DEFAULT nextval('slot_id_seq'),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    -- the booking holding this slot; NULL = free. Taken with a conditional UPDATE. It names a
    -- booking as a foreign key would, checked by the triggers below (slot_booking_check).
    booking_pk       bigint,
    unit_id          integer NOT NULL,
    time_type_id     integer NOT NULL,
    performer_id     integer,
    care_type_code   text,
    resource_id      text,
    CONSTRAINT slot_check CHECK (ends_at > starts_at),
    CONSTRAINT slot_at_most_a_day CHECK (ends_at - starts_at <= interval '1 day')
);
ALTER SEQUENCE slot_id_seq OWNED BY slot.id;

INSERT INTO slot (id, starts_at, ends_at, booking_pk, unit_id, time_type_id, performer_id, care_type_code, resource_id)
SELECT s.id, s.starts_at, s.ends_at, s.booking_pk, u.id, t.id, p.id, s.care_type_code, s.resource_id
FROM slot_text_keys s
JOIN care_unit u ON u.hsa_id = s.unit_hsa_id
JOIN time_type t ON t.unit_hsa_id = s.unit_hsa_id AND t.code = s.time_type_code
LEFT JOIN performer p ON p.unit_hsa_id = s.unit_hsa_id AND p.hsa_id = s.performer_hsa_id
ORDER BY s.unit_hsa_id, s.starts_at;
DROP TABLE slot_text_keys;

-- availability reads free slots of one unit in a time window: covering, so index-only scans do
CREATE INDEX slot_free_by_unit_start ON slot (unit_id, starts_at)
    INCLUDE (ends_at, id, time_type_id, care_type_code, performer_id, resource_id)
    WHERE booking_pk IS NULL;
CREATE INDEX slot_by_unit_start ON slot (unit_id, starts_at);
CREATE UNIQUE INDEX slot_booking ON slot (booking_pk) WHERE booking_pk IS NOT NULL;
CREATE INDEX slot_by_performer ON slot (performer_id, starts_at) WHERE performer_id IS NOT NULL;
CREATE INDEX slot_by_resource ON slot (unit_id, resource_id, starts_at) WHERE resource_id IS NOT NULL;

-- The slots with their unit's HSA-id, their time type's code and their performer's HSA-id, for
-- reading them by those (staff listings, a booking's slot, psql): the planner joins it as if the
-- joins were written out, and leaves out the performer when nothing of it is asked for.
CREATE VIEW slot_named AS
SELECT s.id, u.hsa_id AS unit_hsa_id, s.starts_at, s.ends_at, t.code AS time_type_code, s.care_type_code,
       p.hsa_id AS performer_hsa_id, s.resource_id, s.booking_pk, s.unit_id, s.time_type_id, s.performer_id
FROM slot s
JOIN care_unit u ON u.id = s.unit_id
JOIN time_type t ON t.id = s.time_type_id
LEFT JOIN performer p ON p.id = s.performer_id;

-- What a set of slot rows refers to, with the span each group covers.
CREATE TYPE slot_refs AS (
    unit_id integer, time_type_id integer, performer_id integer, resource_id text,
    first_start timestamptz, last_end timestamptz
);

CREATE FUNCTION slot_check(refs slot_refs[]) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    bad record;
BEGIN
    PERFORM 1 FROM time_type t WHERE t.id IN (SELECT r.time_type_id FROM unnest(refs) r)
        ORDER BY t.id FOR KEY SHARE OF t;
    PERFORM 1 FROM performer p WHERE p.id IN (SELECT r.performer_id FROM unnest(refs) r)
        ORDER BY p.id FOR NO KEY UPDATE OF p;
    PERFORM 1 FROM resource x JOIN care_unit u ON u.hsa_id = x.unit_hsa_id
        WHERE (u.id, x.resource_id) IN (SELECT r.unit_id, r.resource_id FROM unnest(refs) r)
        ORDER BY x.unit_hsa_id, x.resource_id FOR NO KEY UPDATE OF x;

    SELECT r.unit_id, r.time_type_id AS ref INTO bad FROM unnest(refs) r
        WHERE NOT EXISTS (SELECT 1 FROM time_type t JOIN care_unit u ON u.hsa_id = t.unit_hsa_id
                          WHERE t.id = r.time_type_id AND u.id = r.unit_id)
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot refers to time type % at unit %, which does not exist there', bad.ref, bad.unit_id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'slot', CONSTRAINT = 'slot_time_type';
    END IF;
    SELECT r.unit_id, r.performer_id AS ref INTO bad FROM unnest(refs) r
        WHERE r.performer_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM performer p JOIN care_unit u ON u.hsa_id = p.unit_hsa_id
            WHERE p.id = r.performer_id AND u.id = r.unit_id)
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot refers to performer % at unit %, who does not exist there', bad.ref, bad.unit_id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'slot', CONSTRAINT = 'slot_performer';
    END IF;
    SELECT r.unit_id, r.resource_id AS ref INTO bad FROM unnest(refs) r
        WHERE r.resource_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM resource x JOIN care_unit u ON u.hsa_id = x.unit_hsa_id
            WHERE u.id = r.unit_id AND x.resource_id = r.resource_id)
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot refers to resource % at unit %, which does not exist there', bad.ref, bad.unit_id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'slot', CONSTRAINT = 'slot_resource';
    END IF;

    SELECT p.unit_hsa_id, p.hsa_id AS who, o.prev_id, o.id INTO bad
        FROM (SELECT r.performer_id AS who, min(r.first_start) AS lo, max(r.last_end) AS hi
              FROM unnest(refs) r WHERE r.performer_id IS NOT NULL GROUP BY 1) l
        JOIN performer p ON p.id = l.who,
        LATERAL (SELECT s.id, s.starts_at, lag(s.ends_at) OVER w AS prev_end, lag(s.id) OVER w AS prev_id
                 FROM slot s
                 WHERE s.performer_id = l.who AND s.starts_at > l.lo - interval '1 day' AND s.starts_at < l.hi
                 WINDOW w AS (ORDER BY s.starts_at)) o
        WHERE o.prev_end > o.starts_at
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slots % and % overlap for performer % at %', bad.prev_id, bad.id, bad.who, bad.unit_hsa_id
            USING ERRCODE = 'exclusion_violation', TABLE = 'slot', CONSTRAINT = 'slot_performer_overlap';
    END IF;
    SELECT u.hsa_id AS unit_hsa_id, l.who, o.prev_id, o.id INTO bad
        FROM (SELECT r.unit_id, r.resource_id AS who, min(r.first_start) AS lo, max(r.last_end) AS hi
              FROM unnest(refs) r WHERE r.resource_id IS NOT NULL GROUP BY 1, 2) l
        JOIN care_unit u ON u.id = l.unit_id,
        LATERAL (SELECT s.id, s.starts_at, lag(s.ends_at) OVER w AS prev_end, lag(s.id) OVER w AS prev_id
                 FROM slot s
                 WHERE s.unit_id = l.unit_id AND s.resource_id = l.who
                   AND s.starts_at > l.lo - interval '1 day' AND s.starts_at < l.hi
                 WINDOW w AS (ORDER BY s.starts_at)) o
        WHERE o.prev_end > o.starts_at
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slots % and % overlap for resource % at %', bad.prev_id, bad.id, bad.who, bad.unit_hsa_id
            USING ERRCODE = 'exclusion_violation', TABLE = 'slot', CONSTRAINT = 'slot_resource_overlap';
    END IF;
END
$fn$;

-- The booking a slot names exists, locked FOR KEY SHARE as a foreign key would.
CREATE FUNCTION slot_booking_check(pks bigint[]) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    missing bigint;
BEGIN
    PERFORM 1 FROM booking b WHERE b.pk = ANY(pks) ORDER BY b.pk FOR KEY SHARE OF b;
    SELECT p INTO missing FROM unnest(pks) p WHERE NOT EXISTS (SELECT 1 FROM booking b WHERE b.pk = p) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'slot refers to booking %, which does not exist', missing
            USING ERRCODE = 'foreign_key_violation', TABLE = 'slot', CONSTRAINT = 'slot_booking';
    END IF;
END
$fn$;

CREATE FUNCTION slot_check_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    refs slot_refs[];
    booked boolean;
BEGIN
    SELECT array_agg(ROW(unit_id, time_type_id, performer_id, resource_id, lo, hi)::slot_refs), bool_or(taken)
        INTO refs, booked
    FROM (SELECT unit_id, time_type_id, performer_id, resource_id, min(starts_at) AS lo, max(ends_at) AS hi,
                 bool_or(booking_pk IS NOT NULL) AS taken
          FROM new_slots GROUP BY 1, 2, 3, 4) g;
    IF refs IS NOT NULL THEN
        PERFORM slot_check(refs);
    END IF;
    IF booked THEN
        PERFORM slot_booking_check(ARRAY(SELECT booking_pk FROM new_slots WHERE booking_pk IS NOT NULL));
    END IF;
    RETURN NULL;
END
$fn$;

-- A take (one row): the foreign key's own check, as lean (MakeBooking runs it).
CREATE FUNCTION slot_booking_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM 1 FROM booking b WHERE b.pk = NEW.booking_pk FOR KEY SHARE OF b;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'slot refers to booking %, which does not exist', NEW.booking_pk
            USING ERRCODE = 'foreign_key_violation', TABLE = 'slot', CONSTRAINT = 'slot_booking';
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION slot_check_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM slot_check(ARRAY[ROW(NEW.unit_id, NEW.time_type_id, NEW.performer_id, NEW.resource_id,
                                 NEW.starts_at, NEW.ends_at)::slot_refs]);
    RETURN NULL;
END
$fn$;

CREATE TRIGGER slot_checked_insert AFTER INSERT ON slot
    REFERENCING NEW TABLE AS new_slots FOR EACH STATEMENT EXECUTE FUNCTION slot_check_inserted();
CREATE TRIGGER slot_checked_update
    AFTER UPDATE OF unit_id, starts_at, ends_at, time_type_id, performer_id, resource_id ON slot
    FOR EACH ROW WHEN ((OLD.unit_id, OLD.starts_at, OLD.ends_at, OLD.time_type_id, OLD.performer_id, OLD.resource_id)
                       IS DISTINCT FROM (NEW.unit_id, NEW.starts_at, NEW.ends_at, NEW.time_type_id,
                                         NEW.performer_id, NEW.resource_id))
    EXECUTE FUNCTION slot_check_updated();

CREATE TRIGGER slot_booking_taken AFTER UPDATE OF booking_pk ON slot
    FOR EACH ROW WHEN (NEW.booking_pk IS NOT NULL AND NEW.booking_pk IS DISTINCT FROM OLD.booking_pk)
    EXECUTE FUNCTION slot_booking_updated();

-- The referenced side: a row a slot still names may be neither deleted nor moved to another unit
-- (its id stays, so a performer's or time type's other columns may change freely).
CREATE FUNCTION slot_referenced_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    old_key text := to_jsonb(OLD) ->> TG_ARGV[0];
    unit_key integer;
    named boolean;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.unit_hsa_id = OLD.unit_hsa_id
            AND (TG_TABLE_NAME <> 'resource' OR to_jsonb(NEW) ->> TG_ARGV[0] = old_key) THEN
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME = 'performer' THEN
        named := EXISTS (SELECT 1 FROM slot s WHERE s.performer_id = (to_jsonb(OLD) ->> 'id')::integer);
    ELSE
        SELECT id INTO unit_key FROM care_unit WHERE hsa_id = OLD.unit_hsa_id;
        IF TG_TABLE_NAME = 'time_type' THEN
            named := EXISTS (SELECT 1 FROM slot s WHERE s.unit_id = unit_key
                                 AND s.time_type_id = (to_jsonb(OLD) ->> 'id')::integer);
        ELSE
            named := EXISTS (SELECT 1 FROM slot s WHERE s.unit_id = unit_key
                                 AND s.resource_id = old_key);
        END IF;
    END IF;
    IF named THEN
        RAISE EXCEPTION '% % at % is still named by slots', TG_TABLE_NAME, old_key, OLD.unit_hsa_id
            USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME, CONSTRAINT = 'slot_' || TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION slot_referenced_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF (TG_TABLE_NAME = 'time_type' AND EXISTS (SELECT 1 FROM slot))
       OR (TG_TABLE_NAME = 'performer' AND EXISTS (SELECT 1 FROM slot WHERE performer_id IS NOT NULL))
       OR (TG_TABLE_NAME = 'resource' AND EXISTS (SELECT 1 FROM slot WHERE resource_id IS NOT NULL)) THEN
        RAISE EXCEPTION 'cannot truncate %: slots still name its rows (truncate slot too)', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION slot_unit_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM slot WHERE unit_id = OLD.id;
    RETURN OLD;
END
$fn$;

CREATE TRIGGER slot_references_time_type AFTER DELETE OR UPDATE OF unit_hsa_id ON time_type
    FOR EACH ROW EXECUTE FUNCTION slot_referenced_check('code');
CREATE TRIGGER slot_references_performer AFTER DELETE OR UPDATE OF unit_hsa_id ON performer
    FOR EACH ROW EXECUTE FUNCTION slot_referenced_check('hsa_id');
CREATE TRIGGER slot_references_resource AFTER DELETE OR UPDATE OF unit_hsa_id, resource_id ON resource
    FOR EACH ROW EXECUTE FUNCTION slot_referenced_check('resource_id');
CREATE TRIGGER slot_references_time_type_truncated AFTER TRUNCATE ON time_type
    FOR EACH STATEMENT EXECUTE FUNCTION slot_referenced_truncated();
CREATE TRIGGER slot_references_performer_truncated AFTER TRUNCATE ON performer
    FOR EACH STATEMENT EXECUTE FUNCTION slot_referenced_truncated();
CREATE TRIGGER slot_references_resource_truncated AFTER TRUNCATE ON resource
    FOR EACH STATEMENT EXECUTE FUNCTION slot_referenced_truncated();
CREATE TRIGGER slot_deleted_with_unit BEFORE DELETE ON care_unit
    FOR EACH ROW EXECUTE FUNCTION slot_unit_deleted();

-- A booking a slot holds may be neither deleted nor given another key (NO ACTION, as the foreign key).
CREATE FUNCTION slot_booking_gone() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    held bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        SELECT booking_pk INTO held FROM slot WHERE booking_pk IS NOT NULL LIMIT 1;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT s.booking_pk INTO held FROM slot s JOIN gone_bookings g ON s.booking_pk = g.pk LIMIT 1;
    ELSE
        SELECT s.booking_pk INTO held FROM slot s WHERE s.booking_pk = OLD.pk;
    END IF;
    IF held IS NOT NULL THEN
        RAISE EXCEPTION 'booking % is still held by a slot', held
            USING ERRCODE = 'foreign_key_violation', TABLE = 'booking', CONSTRAINT = 'slot_booking';
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER slot_booking_deleted AFTER DELETE ON booking
    REFERENCING OLD TABLE AS gone_bookings FOR EACH STATEMENT EXECUTE FUNCTION slot_booking_gone();
CREATE TRIGGER slot_booking_rekeyed AFTER UPDATE OF pk ON booking
    FOR EACH ROW WHEN (OLD.pk IS DISTINCT FROM NEW.pk) EXECUTE FUNCTION slot_booking_gone();
CREATE TRIGGER slot_booking_truncated AFTER TRUNCATE ON booking
    FOR EACH STATEMENT EXECUTE FUNCTION slot_booking_gone();
"""


DOWNGRADE = r"""
DROP VIEW slot_named;
DROP TRIGGER slot_booking_deleted ON booking;
DROP TRIGGER slot_booking_rekeyed ON booking;
DROP TRIGGER slot_booking_truncated ON booking;
DROP TRIGGER slot_deleted_with_unit ON care_unit;
DROP TRIGGER slot_references_time_type_truncated ON time_type;
DROP TRIGGER slot_references_performer_truncated ON performer;
DROP TRIGGER slot_references_resource_truncated ON resource;
DROP TRIGGER slot_references_time_type ON time_type;
DROP TRIGGER slot_references_performer ON performer;
DROP TRIGGER slot_references_resource ON resource;
DROP TRIGGER slot_booking_taken ON slot;
DROP TRIGGER slot_checked_update ON slot;
DROP TRIGGER slot_checked_insert ON slot;
DROP FUNCTION slot_booking_gone(), slot_unit_deleted(), slot_referenced_truncated(), slot_referenced_check(),
    slot_booking_updated(), slot_check_updated(), slot_check_inserted(), slot_booking_check(bigint[]),
    slot_check(slot_refs[]);
DROP TYPE slot_refs;

ALTER SEQUENCE slot_id_seq OWNED BY NONE;
ALTER TABLE slot RENAME TO slot_integer_keys;
ALTER TABLE slot_integer_keys
    DROP CONSTRAINT slot_pkey, DROP CONSTRAINT slot_check, DROP CONSTRAINT slot_at_most_a_day,
    ALTER COLUMN id DROP NOT NULL, ALTER COLUMN starts_at DROP NOT NULL, ALTER COLUMN ends_at DROP NOT NULL;
DROP INDEX slot_free_by_unit_start, slot_by_unit_start, slot_booking, slot_by_performer, slot_by_resource;

CREATE TABLE slot (
    id               bigint PRIMARY KEY DEFAULT nextval('slot_id_seq'),
    unit_hsa_id      text NOT NULL,
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL,
    time_type_code   text NOT NULL,
    care_type_code   text,
    performer_hsa_id text,
    resource_id      text,
    booking_pk       bigint REFERENCES booking,
    CONSTRAINT slot_check CHECK (ends_at > starts_at),
    CONSTRAINT slot_at_most_a_day CHECK (ends_at - starts_at <= interval '1 day')
);
ALTER SEQUENCE slot_id_seq OWNED BY slot.id;
INSERT INTO slot (id, unit_hsa_id, starts_at, ends_at, time_type_code, care_type_code, performer_hsa_id, resource_id,
                  booking_pk)
SELECT s.id, u.hsa_id, s.starts_at, s.ends_at, t.code, s.care_type_code, p.hsa_id, s.resource_id, s.booking_pk
FROM slot_integer_keys s
JOIN care_unit u ON u.id = s.unit_id
JOIN time_type t ON t.id = s.time_type_id
LEFT JOIN performer p ON p.id = s.performer_id
ORDER BY u.hsa_id, s.starts_at;
DROP TABLE slot_integer_keys;
CREATE INDEX slot_free_by_unit_start ON slot (unit_hsa_id, starts_at)
    INCLUDE (ends_at, id, time_type_code, care_type_code, performer_hsa_id, resource_id)
    WHERE booking_pk IS NULL;
CREATE INDEX slot_by_unit_start ON slot (unit_hsa_id, starts_at);
CREATE UNIQUE INDEX slot_booking ON slot (booking_pk) WHERE booking_pk IS NOT NULL;
CREATE INDEX slot_by_performer ON slot (unit_hsa_id, performer_hsa_id, starts_at) WHERE performer_hsa_id IS NOT NULL;
CREATE INDEX slot_by_resource ON slot (unit_hsa_id, resource_id, starts_at) WHERE resource_id IS NOT NULL;
"""


def _text_key_checks() -> str:
    """0004's functions and triggers (text keys), from its type slot_refs on: what downgrade restores."""
    path = Path(__file__).with_name("0004_set_wise_slot_checks.py")
    spec = importlib.util.spec_from_file_location("tidbok_migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.UPGRADE[module.UPGRADE.index("CREATE TYPE slot_refs") :]


def _change_signal(units_of: Callable[[str], str]) -> str:
    """0008's notices (each changed slot's unit, by HSA-id, on tidbok_slots) for the slot table as
    it is: units_of(transition table) selects the HSA-ids of the units of its rows."""
    return f"""
CREATE OR REPLACE FUNCTION slot_changed_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', u) FROM ({units_of("changed_new")}) x(u);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION slot_changed_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', u) FROM ({units_of("changed_old")}) x(u);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION slot_changed_both() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', u) FROM ({units_of("changed_new")} UNION {units_of("changed_old")}) x(u);
    RETURN NULL;
END $$;
CREATE TRIGGER slot_inserted AFTER INSERT ON slot REFERENCING NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION slot_changed_new();
CREATE TRIGGER slot_deleted AFTER DELETE ON slot REFERENCING OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION slot_changed_old();
CREATE TRIGGER slot_updated AFTER UPDATE ON slot REFERENCING NEW TABLE AS changed_new OLD TABLE AS changed_old
    FOR EACH STATEMENT EXECUTE FUNCTION slot_changed_both();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(_change_signal(_units_by_key))


def _units_by_key(table: str) -> str:
    """Each distinct unit key of a transition table once, then its HSA-id (a unit is still there
    when its slots go with it: slot_deleted_with_unit runs BEFORE its delete)."""
    unit = "(SELECT u.hsa_id FROM care_unit u WHERE u.id = k.unit_id)"
    return f"SELECT {unit} FROM (SELECT DISTINCT unit_id FROM {table}) k"


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(_text_key_checks())
    op.execute(_change_signal(lambda t: f"SELECT DISTINCT unit_hsa_id FROM {t}"))
    op.execute("ALTER TABLE performer DROP COLUMN id")
    op.execute("ALTER TABLE time_type DROP COLUMN id")
    op.execute("ALTER TABLE care_unit DROP COLUMN id")
