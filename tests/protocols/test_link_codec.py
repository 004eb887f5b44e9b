"""Framing, CRC and the incremental decoder of protocols.link."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import link
from protocols.link import Frame, FrameDecoder, FrameError

payloads = st.binary(max_size=link.MAX_PAYLOAD)
UNSEQUENCED = (link.T_HEARTBEAT, link.T_ACK)
sequenced = st.builds(
    Frame,
    st.sampled_from([t for t in link.FRAME_TYPES if t not in UNSEQUENCED]),
    st.integers(1, 255),
    st.integers(0, 255),
    payloads,
)
unsequenced = st.builds(Frame, st.sampled_from(UNSEQUENCED), st.just(0), st.integers(0, 255), payloads)
frames = sequenced | unsequenced


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[Frame | FrameError]:
    decoder = FrameDecoder()
    out: list[Frame | FrameError] = []
    start = 0
    for cut in sorted(set(cuts)):
        out += decoder.feed(data[start:cut])
        start = cut
    out += decoder.feed(data[start:])
    return out


def test_crc_check_value_of_ccitt_false() -> None:
    # 0x29B1 is the published check value of CRC-16/CCITT-FALSE for "123456789".
    assert link.crc16_py(b"123456789") == 0x29B1
    assert link.crc16(b"123456789") == 0x29B1


@given(st.binary(max_size=600))
def test_pure_python_crc_matches_the_c_one(data: bytes) -> None:
    assert link.crc16_py(data) == binascii.crc_hqx(data, 0xFFFF)


@given(st.binary(max_size=1200))
def test_cobs_round_trip_never_contains_a_delimiter(data: bytes) -> None:
    encoded = link.cobs_encode(data)
    assert b"\x00" not in encoded
    assert link.cobs_decode(encoded) == data
    # Overhead is at most one byte per started 254 bytes, plus one.
    assert len(encoded) <= len(data) + 1 + len(data) // 254


@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    wire = link.encode_frame(frame.frame_type, frame.seq, frame.ack, frame.payload)
    assert len(wire) <= link.MAX_ENCODED + 2
    assert FrameDecoder().feed(wire) == [frame]


@given(st.lists(frames, max_size=6), st.lists(st.integers(0, 2000), max_size=20))
def test_any_split_of_the_stream_decodes_the_same(sent: list[Frame], cuts: list[int]) -> None:
    wire = b"".join(link.encode_frame(f.frame_type, f.seq, f.ack, f.payload) for f in sent)
    assert feed_in_chunks(wire, cuts) == sent


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=30))
def test_arbitrary_bytes_give_frames_or_typed_errors(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder()
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        for item in decoder.feed(data[start:cut]):
            assert isinstance(item, Frame | FrameError)
            if isinstance(item, FrameError):
                assert item.reason in link.ERROR_REASONS
                assert item.detail
        assert decoder.pending() <= link.MAX_ENCODED
        start = max(start, cut)


@given(st.binary(max_size=400).filter(lambda b: b"\x00" not in b), frames)
def test_decoder_resynchronises_after_noise(noise: bytes, frame: Frame) -> None:
    wire = link.encode_frame(frame.frame_type, frame.seq, frame.ack, frame.payload)
    decoder = FrameDecoder()
    decoder.feed(noise)
    out = decoder.feed(wire)
    assert out[-1] == frame
    # The noise costs at most one error, never the frame after it.
    assert len(out) <= 2


@given(frames, st.integers(1, 40))
def test_frame_cut_short_by_a_reboot_is_reported_and_the_next_one_decodes(frame: Frame, keep: int) -> None:
    wire = link.encode_frame(frame.frame_type, frame.seq, frame.ack, frame.payload)
    cut = wire[: min(keep, len(wire) - 2)]
    out = FrameDecoder().feed(cut + wire)
    assert out[-1] == frame
    assert all(isinstance(item, FrameError) for item in out[:-1])


def test_error_counts_by_reason() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x03\x01\x00" + b"\x00" + b"A" * 300 + b"\x00")
    assert decoder.error_counts == {"bad-cobs": 1, "oversized": 1}
    assert decoder.errors == 2
    assert decoder.frames == 0


@pytest.mark.parametrize(
    ("frame_type", "seq", "payload", "words"),
    [
        (link.T_EVENT, 1, b"x" * (link.MAX_PAYLOAD + 1), "at most 240"),
        (0x7F, 1, b"", "not defined"),
        (link.T_EVENT, 0, b"", "seq 1..255"),
        (link.T_HEARTBEAT, 3, b"", "seq 0"),
        (link.T_EVENT, 256, b"", "single bytes"),
    ],
)
def test_encoder_refuses_what_no_peer_would_accept(
    frame_type: int, seq: int, payload: bytes, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        link.encode_frame(frame_type, seq, 0, payload)
