"""Event ids: UUID4s from blocks of OS randomness, unique, uniform, not shared with a fork."""

from __future__ import annotations

import os
import uuid
from collections import Counter

from scipy.stats import chisquare

from router.event_ids import new_event_id


def test_ids_are_version_4_uuids_in_hex() -> None:
    for _ in range(1000):  # crosses several 4 KiB blocks
        event_id = new_event_id()
        parsed = uuid.UUID(hex=event_id)
        assert parsed.hex == event_id
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_are_unique_and_their_random_digits_uniform() -> None:
    ids = [new_event_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    # Digit 0 and digit 20 are free (12 and 16 hold the version and variant bits):
    # each of the 16 values appears equally often.
    for position in (0, 20, 31):
        counts = Counter(event_id[position] for event_id in ids)
        observed = [counts[digit] for digit in "0123456789abcdef"]
        assert chisquare(observed).pvalue > 1e-4, (position, observed)


def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    new_event_id()  # the parent holds a partly used block
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        os.close(read_end)
        os.write(write_end, ",".join(new_event_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_event_id() for _ in range(10)}
    assert len(child) == 10 and not child & parent
