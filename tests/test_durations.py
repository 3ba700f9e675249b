import pytest

from botwatch.core.durations import format_duration, parse_duration


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1d", 86400),
                                          ("250ms", 0.25), (30, 30), ("45", 45)])
def test_durations_are_read_as_the_estate_file_writes_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15x", "m15", "1h 30m", "-5s", "abc", True])
def test_bad_durations_are_refused_with_a_readable_message(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_format_short_for_tables():
    assert format_duration(45) == "45s"
    assert format_duration(600) == "10m"
    assert format_duration(3 * 3600 + 300) == "3h05m"
