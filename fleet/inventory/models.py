"""The fleet's inventory as stored: sites (the poles' places), the edge node at each, its
cameras, pole controller and storage devices, and free-form tags for grouping. What the nodes
report (births, telemetry) updates the node side; what the city knows (address, district, pole
type, coordinates, a camera's purpose) is imported from CSV (fleet.inventory.csv_import).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final, Literal, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fleet.db import Base

Ms = sa.BigInteger  # epoch milliseconds, as on the wire

# The contract's site classes: a pole in the street, or the control centre's own equipment.
# They set inspection schedules (fleet.inspections) and group the monthly report.
SiteClass = Literal["field", "centre"]
SITE_CLASSES: Final[tuple[SiteClass, ...]] = get_args(SiteClass)


class CameraPurpose(enum.StrEnum):
    CRIME_PREVENTION = "crime-prevention"
    PARKING = "parking"
    FLOOD_WATCH = "flood-watch"
    TRAFFIC = "traffic"
    OTHER = "other"


class Site(Base):
    """A pole site: where technicians go."""

    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    address: Mapped[str] = mapped_column(sa.String(500), default="")
    district: Mapped[str] = mapped_column(sa.String(100), default="", index=True)
    pole_type: Mapped[str] = mapped_column(sa.String(100), default="")
    latitude: Mapped[float | None] = mapped_column(sa.Float)
    longitude: Mapped[float | None] = mapped_column(sa.Float)
    has_bell: Mapped[bool] = mapped_column(default=False)
    # One of SITE_CLASSES.
    site_class: Mapped[str] = mapped_column(
        sa.String(32), default="field", server_default="field", index=True
    )
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    nodes: Mapped[list[Node]] = relationship(back_populates="site")
    tags: Mapped[list[SiteTag]] = relationship(back_populates="site", cascade="all, delete-orphan")


class SiteTag(Base):
    """A free-form label for grouping sites ("school-zone", "wave-1")."""

    __tablename__ = "site_tag"
    __table_args__ = (sa.UniqueConstraint("site_pk", "tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_pk: Mapped[int] = mapped_column(sa.ForeignKey("site.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(sa.String(64), index=True)

    site: Mapped[Site] = relationship(back_populates="tags")


class Node(Base):
    """The edge node (Raspberry Pi) at a site, as its births describe it."""

    __tablename__ = "node"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    site_pk: Mapped[int | None] = mapped_column(sa.ForeignKey("site.id", ondelete="SET NULL"), index=True)
    hardware: Mapped[str] = mapped_column(sa.String(128), default="")
    agent_version: Mapped[str] = mapped_column(sa.String(64), default="")
    node_key: Mapped[str | None] = mapped_column(sa.String(64))  # verifies its signed site visits
    # The MQTT session as protocols.session.NodeSession keeps it, shared by every fleet worker.
    online: Mapped[bool] = mapped_column(default=False)
    bd_seq: Mapped[int | None] = mapped_column(sa.SmallInteger)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    gaps: Mapped[int] = mapped_column(default=0, server_default="0")
    duplicates: Mapped[int] = mapped_column(default=0, server_default="0")
    last_seen_ms: Mapped[int | None] = mapped_column(Ms)
    birth_ms: Mapped[int | None] = mapped_column(Ms)

    site: Mapped[Site | None] = relationship(back_populates="nodes")
    cameras: Mapped[list[Camera]] = relationship(back_populates="node", cascade="all, delete-orphan")
    controller: Mapped[Controller | None] = relationship(back_populates="node", cascade="all, delete-orphan")
    storage: Mapped[list[StorageDevice]] = relationship(back_populates="node", cascade="all, delete-orphan")


class Camera(Base):
    __tablename__ = "camera"
    __table_args__ = (sa.UniqueConstraint("node_pk", "camera_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node_pk: Mapped[int] = mapped_column(sa.ForeignKey("node.id", ondelete="CASCADE"))
    camera_id: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(128), default="")
    model: Mapped[str] = mapped_column(sa.String(128), default="")
    purpose: Mapped[CameraPurpose] = mapped_column(
        sa.Enum(CameraPurpose, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e]),
        default=CameraPurpose.OTHER,
    )

    node: Mapped[Node] = relationship(back_populates="cameras")


class Controller(Base):
    """The pole controller behind a node (or its GPIO wiring)."""

    __tablename__ = "controller"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_pk: Mapped[int] = mapped_column(sa.ForeignKey("node.id", ondelete="CASCADE"), unique=True)
    link: Mapped[str] = mapped_column(sa.String(16))  # "serial" or "gpio"
    firmware_version: Mapped[str | None] = mapped_column(sa.String(64))
    reset_cause: Mapped[str | None] = mapped_column(sa.String(32))

    node: Mapped[Node] = relationship(back_populates="controller")


class StorageDevice(Base):
    __tablename__ = "storage_device"
    __table_args__ = (sa.UniqueConstraint("node_pk", "device"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    node_pk: Mapped[int] = mapped_column(sa.ForeignKey("node.id", ondelete="CASCADE"))
    device: Mapped[str] = mapped_column(sa.String(128))
    health: Mapped[str] = mapped_column(sa.String(16), default="unknown")
    wear_pct: Mapped[float | None] = mapped_column(sa.Float)
    free_bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    read_only: Mapped[bool] = mapped_column(default=False)

    node: Mapped[Node] = relationship(back_populates="storage")
