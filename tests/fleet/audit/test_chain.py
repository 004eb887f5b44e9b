"""The audit log as a hash chain, on SQLite and on a real PostgreSQL: the database refuses
edits, and an edit made around it (the triggers dropped, as someone with the database's
owner password could) is found by the verify walk and `watchpost fleet audit-verify`."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session

from fleet.audit import log
from fleet.audit.chain import GENESIS, digest_of, verify
from fleet.audit.models import AuditEntry, AuditHead
from fleet.db import make_engine, migrate
from watchpost.cli import main


def write(engine: sa.Engine, count: int, *, actor: str = "operator-7") -> None:
    for n in range(count):
        with Session(engine) as db, db.begin():
            log.record(
                db,
                at_ms=1_764_000_000_000 + n,
                actor=actor,
                role="operator",
                action="ticket.dispatch",
                target=f"ticket/t{n}",
                detail={"technician": "tech-0193", "n": n},
            )


def around_the_triggers(engine: sa.Engine, statement: str) -> None:
    """Run `statement` on audit_log with its append-only triggers out of the way."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
            connection.exec_driver_sql(statement)
            connection.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        else:
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            connection.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
            connection.exec_driver_sql(statement)


def report(engine: sa.Engine) -> tuple[int, str | None, int | None]:
    with Session(engine) as db:
        found = verify(db)
    return found.checked, found.problem, found.entry_id


def entry_id(engine: sa.Engine, seq: int) -> int:
    with Session(engine) as db:
        return db.scalars(sa.select(AuditEntry.id).where(AuditEntry.seq == seq)).one()


def test_entries_chain_one_to_the_next(fleet_engine: sa.Engine) -> None:
    write(fleet_engine, 5)
    assert report(fleet_engine) == (5, None, None)
    with Session(fleet_engine) as db:
        rows = list(db.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)))
        head = db.get(AuditHead, 1)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_sha256 == GENESIS
    assert all(b.prev_sha256 == a.entry_sha256 for a, b in itertools.pairwise(rows))
    assert head is not None
    assert (head.seq, head.last_sha256) == (5, rows[-1].entry_sha256)


def test_an_empty_log_is_whole(fleet_engine: sa.Engine) -> None:
    assert report(fleet_engine) == (0, None, None)


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET actor = 'someone-else'", "DELETE FROM audit_log WHERE seq = 2"]
)
def test_the_database_refuses_to_change_the_log(fleet_engine: sa.Engine, statement: str) -> None:
    write(fleet_engine, 3)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), fleet_engine.begin() as connection:
        connection.exec_driver_sql(statement)
    assert report(fleet_engine) == (3, None, None)


def test_an_edited_entry_is_found(fleet_engine: sa.Engine) -> None:
    write(fleet_engine, 6)
    around_the_triggers(
        fleet_engine, 'UPDATE audit_log SET detail = \'{"technician": "tech-0200"}\' WHERE seq = 4'
    )
    checked, problem, where = report(fleet_engine)
    assert (checked, where) == (3, entry_id(fleet_engine, 4))
    assert problem is not None
    assert "was changed after it was written" in problem


def test_an_edit_that_rehashes_its_own_entry_breaks_the_next_link(fleet_engine: sa.Engine) -> None:
    # Someone who knows the scheme recomputes the edited entry's hash; the next entry still
    # names the old one.
    write(fleet_engine, 4)
    with Session(fleet_engine) as db:
        entry = db.scalars(sa.select(AuditEntry).where(AuditEntry.seq == 2)).one()
        entry.actor = "intruder"
        forged = digest_of(entry, entry.prev_sha256)
        db.rollback()
    around_the_triggers(
        fleet_engine, f"UPDATE audit_log SET actor = 'intruder', entry_sha256 = '{forged}' WHERE seq = 2"
    )
    checked, problem, where = report(fleet_engine)
    assert (checked, where) == (2, entry_id(fleet_engine, 3))
    assert problem is not None
    assert "does not follow" in problem


def test_a_removed_entry_is_found(fleet_engine: sa.Engine) -> None:
    write(fleet_engine, 5)
    around_the_triggers(fleet_engine, "DELETE FROM audit_log WHERE seq = 3")
    checked, problem, where = report(fleet_engine)
    assert (checked, where) == (2, entry_id(fleet_engine, 4))
    assert problem is not None
    assert "3 is missing" in problem


def test_a_cut_off_tail_is_found(fleet_engine: sa.Engine) -> None:
    write(fleet_engine, 5)
    around_the_triggers(fleet_engine, "DELETE FROM audit_log WHERE seq >= 4")
    checked, problem, _ = report(fleet_engine)
    assert checked == 3
    assert problem is not None
    assert "entries were removed" in problem


@pytest.mark.postgres
def test_concurrent_appends_keep_one_chain(postgres_url: str) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    try:
        writers = [
            threading.Thread(target=write, args=(engine, 25), kwargs={"actor": f"op-{n}"}) for n in range(4)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert report(engine) == (100, None, None)
    finally:
        engine.dispose()


def test_entries_written_before_the_chain_join_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    migrate(url, "0009")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for n in range(3):
                connection.exec_driver_sql(
                    "INSERT INTO audit_log (at_ms, actor, role, action, target, detail)"
                    f" VALUES ({n}, 'admin', 'admin', 'token.issue', 'token/t{n}', '{{}}')"
                )
        migrate(url)
        assert report(engine) == (3, None, None)
        write(engine, 2)
        assert report(engine) == (5, None, None)
    finally:
        engine.dispose()


def test_audit_verify_command_names_the_edited_entry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = tmp_path / "fleet.toml"
    settings.write_text(f'[fleet]\ndata_dir = "{data}"\n')
    runner = CliRunner()
    for subject in ("tech-0193", "viewer-1"):
        issued = runner.invoke(
            main,
            ["fleet", "issue-token", "--config", str(settings), "--subject", subject, "--role", "viewer"],
        )
        assert issued.exit_code == 0, issued.output
    whole = runner.invoke(main, ["fleet", "audit-verify", "--config", str(settings)])
    assert whole.exit_code == 0, whole.output
    assert "2 entries, the chain is whole" in whole.output

    engine = make_engine(f"sqlite:///{data / 'fleet.db'}")
    try:
        around_the_triggers(engine, "UPDATE audit_log SET role = 'viewer' WHERE seq = 1")
        edited = entry_id(engine, 1)
    finally:
        engine.dispose()
    broken = runner.invoke(main, ["fleet", "audit-verify", "--config", str(settings)])
    assert broken.exit_code == 1
    assert f"entry {edited} was changed after it was written" in broken.output
