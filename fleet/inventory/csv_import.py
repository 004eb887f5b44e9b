"""Sites from the city's CSV (one row per pole site): checked whole, then applied in one
transaction, so a file with one bad row changes nothing and says which rows and columns.

Columns (header row required, order free): site_id, name, address, district, pole_type,
latitude, longitude, has_bell (yes/no, true/false, 1/0), tags (separated by ';'). Only site_id
and name are required. A site_id already known is updated; the others are created.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from fleet.inventory.models import SITE_CLASSES, Site, SiteTag
from protocols.topics import ID_PATTERN

COLUMNS = (
    "site_id",
    "name",
    "address",
    "district",
    "pole_type",
    "latitude",
    "longitude",
    "has_bell",
    "tags",
    "site_class",
)
REQUIRED = ("site_id", "name")
MAX_ROWS = 20_000
_ID = re.compile(ID_PATTERN)
_TRUE, _FALSE = {"yes", "true", "1", "y"}, {"no", "false", "0", "n", ""}


@dataclass(frozen=True, slots=True)
class SiteRow:
    site_id: str
    name: str
    address: str = ""
    district: str = ""
    pole_type: str = ""
    latitude: float | None = None
    longitude: float | None = None
    has_bell: bool = False
    tags: tuple[str, ...] = ()
    site_class: str = "field"


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int  # in the file, the header being line 1; 0: the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "the file"
        where += f", column {self.column}" if self.column else ""
        return f"{where}: {self.message}"


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    problems: list[RowProblem] = field(default_factory=list)


class CsvImportError(ValueError):
    """The file was refused as a whole; `problems` says where."""

    def __init__(self, problems: list[RowProblem]) -> None:
        shown = "; ".join(str(p) for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} problem(s) in the sites CSV: {shown}{more}")
        self.problems = problems


def parse_sites(text: str) -> list[SiteRow]:
    """Rows of the file, checked; raises CsvImportError naming every bad row and column."""
    try:
        return _parse(text)
    except csv.Error as error:
        raise CsvImportError([RowProblem(0, None, f"not readable as CSV: {error}")]) from None


def _parse(text: str) -> list[SiteRow]:
    # newline="": the csv module does its own line endings (quoted cells may hold newlines).
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))  # spreadsheets add a BOM
    header = [h.strip() for h in reader.fieldnames or []]
    problems = [RowProblem(1, c, "required column is missing") for c in REQUIRED if c not in header]
    problems += [
        RowProblem(1, c, f"unknown column; known: {', '.join(COLUMNS)}") for c in header if c not in COLUMNS
    ]
    if problems:
        raise CsvImportError(problems)
    rows: list[SiteRow] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            raise CsvImportError([RowProblem(number, None, f"more than {MAX_ROWS} rows: split the file")])
        cells = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if None in raw:
            problems.append(RowProblem(number, None, "more cells than columns"))
            continue
        row = _row(number, cells, problems)
        if row is None:
            continue
        if row.site_id in seen:
            problems.append(
                RowProblem(number, "site_id", f"{row.site_id!r} repeats line {seen[row.site_id]}")
            )
            continue
        seen[row.site_id] = number
        rows.append(row)
    if problems:
        raise CsvImportError(problems)
    return rows


def _row(number: int, cells: dict[str, str], problems: list[RowProblem]) -> SiteRow | None:
    before = len(problems)
    site_id = cells.get("site_id", "")
    if not _ID.fullmatch(site_id):
        problems.append(
            RowProblem(number, "site_id", f"{site_id!r} is not an id: 1-64 of a-z, 0-9, '.', '_', '-'")
        )
    name = cells.get("name", "")
    if not name or len(name) > 200:
        problems.append(RowProblem(number, "name", "required, at most 200 characters"))
    coordinates: dict[str, float | None] = {}
    for column, low, high in (("latitude", -90.0, 90.0), ("longitude", -180.0, 180.0)):
        text = cells.get(column, "")
        if not text:
            coordinates[column] = None
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            problems.append(RowProblem(number, column, f"{text!r} is not a number from {low:g} to {high:g}"))
        coordinates[column] = value
    bell = cells.get("has_bell", "").lower()
    if bell not in _TRUE | _FALSE:
        problems.append(RowProblem(number, "has_bell", f"{bell!r}: use yes or no"))
    tags = tuple(dict.fromkeys(t.strip() for t in cells.get("tags", "").split(";") if t.strip()))
    for tag in tags:
        if not _ID.fullmatch(tag):
            problems.append(RowProblem(number, "tags", f"tag {tag!r} is not an id"))
    for column in ("address", "district", "pole_type"):
        if len(cells.get(column, "")) > (500 if column == "address" else 100):
            problems.append(RowProblem(number, column, "too long"))
    site_class = cells.get("site_class", "") or "field"
    if site_class not in SITE_CLASSES:
        problems.append(RowProblem(number, "site_class", f"{site_class!r}: use {' or '.join(SITE_CLASSES)}"))
    if len(problems) > before:
        return None
    return SiteRow(
        site_id=site_id,
        name=name,
        address=cells.get("address", ""),
        district=cells.get("district", ""),
        pole_type=cells.get("pole_type", ""),
        latitude=coordinates["latitude"],
        longitude=coordinates["longitude"],
        has_bell=bell in _TRUE,
        tags=tags,
        site_class=site_class,
    )


def import_sites(session: Session, text: str) -> ImportReport:
    """Parse, then create or update every site in the caller's transaction."""
    rows = parse_sites(text)
    report = ImportReport()
    existing = {
        site.site_id: site
        for site in session.scalars(sa.select(Site).where(Site.site_id.in_([r.site_id for r in rows])))
    }
    for row in rows:
        site = existing.get(row.site_id)
        if site is None:
            site = Site(site_id=row.site_id, name=row.name)
            session.add(site)
            report.created += 1
        else:
            report.updated += 1
        site.name = row.name
        site.address = row.address
        site.district = row.district
        site.pole_type = row.pole_type
        site.latitude = row.latitude
        site.longitude = row.longitude
        site.has_bell = row.has_bell
        site.site_class = row.site_class
        # Keep the tags that stay (a replaced collection would insert before it deletes).
        site.tags = [t for t in site.tags if t.tag in row.tags]
        have = {t.tag for t in site.tags}
        site.tags += [SiteTag(tag=tag) for tag in row.tags if tag not in have]
    session.flush()
    return report
