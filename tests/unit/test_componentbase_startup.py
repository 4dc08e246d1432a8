"""componentbase's poll and the mains' shared start: what callers rely on."""

from __future__ import annotations

import logging

import pytest

from componentbase.polling import poll
from componentbase.startup import fail, setup_logging


def test_poll_returns_the_first_truthy_value_and_treats_exceptions_as_not_yet() -> None:
    answers = iter([ValueError("not up"), 0, None, "ready"])

    def check() -> object:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert poll(check, timeout=5, what="it", interval=0) == "ready"


def test_poll_names_what_it_waited_for_and_the_last_error_at_the_deadline() -> None:
    def broken() -> bool:
        raise ConnectionRefusedError("no")

    with pytest.raises(TimeoutError, match=r"waiting for the server \(last error: "
                                           r"ConnectionRefusedError\('no'\)\)"):
        poll(broken, timeout=0.05, what="the server", interval=0.01)
    with pytest.raises(TimeoutError, match=r"waiting for nothing$"):
        poll(lambda: False, timeout=0.05, what="nothing", interval=0.01)


def test_fail_prints_one_error_line_and_returns_the_status(capsys) -> None:
    assert fail("mp-dnsd", "cannot listen on 127.0.0.1:53: Address in use", 1) == 1
    assert capsys.readouterr().err == "mp-dnsd: error: cannot listen on 127.0.0.1:53: Address in use\n"


def test_setup_logging_holds_the_quiet_loggers_at_warning() -> None:
    chatty = logging.getLogger("test-startup-chatty")
    setup_logging("debug", quiet=("test-startup-chatty",))
    assert chatty.level == logging.WARNING
