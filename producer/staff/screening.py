"""A screening call: open invitations for every resident in a CSV of personnummer, once per campaign.

Loading the same list again (or an overlapping one) invites nobody twice: the 0003 unique index on
unit, campaign and resident decides, inside one INSERT … ON CONFLICT DO NOTHING, so even two loads
at once cannot. The report names, by line, each personnummer that cannot be used (its date or check
digit; the number is not repeated) and each resident the campaign had invited already. The valid
lines are invited even when others are not: fix the file and load it again. The calendar core
writes them (producer.calendar.invitations.invite_open_many); here: reading the list, the report.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import psycopg

from producer.calendar import invitations
from producer.staff import checks
from producer.staff.actor import Staff
from producer.staff.audit import audited
from producer.staff.errors import StaffError
from producer.staff.invitations import open_terms
from producer.staff.results import AlreadyInvited, BatchReport, InvalidLine, Invited
from producer.sweden.identifiers import check_subject_of_care_id

HEADER_NAMES = {"personnummer", "personnr", "pnr", "subject_of_care", "resident"}
DELIMITERS = ";,\t"


def read_personnummer(text: str) -> tuple[list[tuple[int, str]], list[InvalidLine]]:
    """(line, personnummer) for each usable line, and the lines that are not.

    The personnummer is the column headed personnummer (or pnr, subject_of_care, resident), else the
    first; a first line without digits there is a header. 12 digits, optionally with a hyphen after
    the date (19121212-1212); blank lines are skipped. Delimiter ; , or tab, from the first line."""
    text = text.removeprefix("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = next((d for d in DELIMITERS if d in first), ",")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    column: int | None = None
    found: list[tuple[int, str]] = []
    invalid: list[InvalidLine] = []
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if column is None:
            names = [cell.strip().lower() for cell in cells]
            column = next((i for i, name in enumerate(names) if name in HEADER_NAMES), 0)
            if column or not any(ch.isdigit() for ch in cells[0]):
                continue  # a header line
        value = cells[column].strip().replace(" ", "") if column < len(cells) else ""
        if len(value) == 13 and value[8] == "-":
            value = value[:8] + value[9:]
        problem = check_subject_of_care_id(value)
        if problem:
            invalid.append(InvalidLine(line, problem.replace("subject of care id", "personnummer")))
        else:
            found.append((line, value))
    return found, invalid


@audited("StaffInviteBatch")
def invite_batch(
    conn: psycopg.Connection,
    staff: Staff,
    csv_text: str,
    *,
    unit: str,
    time_type: str,
    campaign: str,
    purpose: str,
    valid_until: date | datetime,
    invitation_date: date | None = None,
    now: datetime | None = None,
) -> BatchReport:
    """Invite each resident of the list (open invitations, all on the same terms) in one transaction."""
    now = now or datetime.now(UTC)
    name = checks.campaign(campaign)
    if name is None:
        raise StaffError("campaign", "a screening call needs a campaign name: it makes the batch safe to load again")
    terms = open_terms(conn, unit, time_type, purpose, valid_until, invitation_date, now)
    found, invalid = read_personnummer(csv_text)
    first_line: dict[str, int] = {}
    repeated: list[tuple[int, str]] = []
    for line, resident in found:
        if resident in first_line:
            repeated.append((line, resident))
        else:
            first_line[resident] = line
    residents = list(first_line)
    invited_ids, existing = invitations.invite_open_many(conn, staff.actor(), terms, residents, name, now)
    known = {**existing, **invited_ids}
    already = [AlreadyInvited(first_line[r], r, existing[r]) for r in residents if r in existing]
    already += [AlreadyInvited(line, r, known[r]) for line, r in repeated]
    return BatchReport(
        unit=terms.unit,
        campaign=name,
        invited=[Invited(first_line[r], r, invited_ids[r]) for r in residents if r in invited_ids],
        already_invited=sorted(already, key=lambda a: a.line),
        invalid=invalid,
    )
