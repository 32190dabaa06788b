import math

from vae_core.timing import format_duration


def test_durations_read_as_people_write_them():
    assert [format_duration(s) for s in (None, math.nan, -3, 4.4, 65, 3720)] == [
        "…", "…", "0 s", "4 s", "1 min 05 s", "1 h 02 min"]
