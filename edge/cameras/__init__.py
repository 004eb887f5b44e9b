"""The pole's cameras as the edge agent sees them: their config (`config`), a reachability probe
(`probe`, speaking the bit of RTSP in `rtsp`), the local HTTP endpoint where cameras and the
NVR push video metadata (`ingest`, checked by `metadata`), recording gap detection (`gaps`),
and a fake RTSP camera for tests and the demo (`fake`)."""

from edge.cameras.config import CameraConfig, cameras_by_id
from edge.cameras.errors import CameraConfigError, CameraError, IngestRejected
from edge.cameras.gaps import GapDetector, GapPolicy, RecordingGap
from edge.cameras.ingest import PUSH_PATH, IngestCounters, MetadataIngest, MetadataSink
from edge.cameras.metadata import MAX_RECORDS, VideoRecord, parse_push
from edge.cameras.probe import ProbeResult, probe, probe_all

__all__ = [
    "MAX_RECORDS",
    "PUSH_PATH",
    "CameraConfig",
    "CameraConfigError",
    "CameraError",
    "GapDetector",
    "GapPolicy",
    "IngestCounters",
    "IngestRejected",
    "MetadataIngest",
    "MetadataSink",
    "ProbeResult",
    "RecordingGap",
    "VideoRecord",
    "cameras_by_id",
    "parse_push",
    "probe",
    "probe_all",
]
