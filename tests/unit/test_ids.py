"""Event ids: UUIDv7 from buffered randomness, never repeated, not even across a fork."""

from __future__ import annotations

import os
import uuid

from roomcast.ids import uuid7, uuid7_text


def test_a_uuid7_has_version_7_the_rfc_variant_and_the_given_millisecond():
    value = uuid7(unix_ms=0x0123_4567_89AB)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == 0x0123_4567_89AB


def test_the_text_form_is_the_canonical_text_of_a_uuid7():
    for _ in range(200):
        text = uuid7_text(unix_ms=0x0123_4567_89AB)
        value = uuid.UUID(text)
        assert str(value) == text  # 8-4-4-4-12 lower-case hex
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert value.int >> 80 == 0x0123_4567_89AB


def test_ids_stay_distinct_across_many_refills_of_the_random_buffer():
    ids = [uuid7(unix_ms=1) for _ in range(5_000)]  # same millisecond: only randomness differs
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_its_parents_next_ids():
    uuid7()  # the parent's buffer holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids, then leave without pytest's teardown
        os.close(read)
        os.write(write, b"".join(uuid7(unix_ms=1).bytes for _ in range(10)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    child = {data[i : i + 16] for i in range(0, len(data), 16)}
    parent = {uuid7(unix_ms=1).bytes for _ in range(10)}
    assert len(child) == 10
    assert not child & parent
