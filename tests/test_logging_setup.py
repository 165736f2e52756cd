"""The logging set-up skips the stack walk for each record's caller (``logging._srcfile = None``).

``_srcfile`` is private by name, documented as the switch in the logging HOWTO's "Optimization"
section: this pins that setting it still does what the app relies on, with a control that it is the
setting, not the Python version, that leaves the caller out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from backend.observability import configure_logging


@pytest.fixture
def srcfile() -> Iterator[None]:
    saved = (logging._srcfile, logging.logThreads, logging.logMultiprocessing, logging.root.handlers[:])
    yield
    logging._srcfile, logging.logThreads, logging.logMultiprocessing = saved[:3]
    logging.root.handlers[:] = saved[3]


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record() -> logging.LogRecord:
    logger = logging.getLogger("tests.logging_setup")
    kept = _Kept()
    logger.addHandler(kept)
    try:
        logger.warning("hello")
    finally:
        logger.removeHandler(kept)
    assert len(kept.records) == 1
    return kept.records[0]


@pytest.mark.usefixtures("srcfile")
def test_the_set_up_leaves_out_the_callers_file_and_line() -> None:
    configure_logging()
    record = _record()
    assert (record.pathname, record.lineno, record.funcName) == ("(unknown file)", 0, "(unknown function)")


@pytest.mark.usefixtures("srcfile")
def test_control_without_it_the_record_names_its_caller() -> None:
    # The stock value (another test may have run the set-up in this process already).
    logging._srcfile = os.path.normcase(logging.addLevelName.__code__.co_filename)
    record = _record()
    assert record.pathname == __file__
    assert record.funcName == "_record"
