"""Logging as `servicekit.logs` configures it: one format on stderr for every logger, JSON
lines when asked, the Kafka client quieter, and a logger silenced on purpose left silent."""

import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from servicekit.kafka import make_broker
from servicekit.logs import configure_logging
from servicekit.settings import ServiceSettings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root, names = logging.getLogger(), ("faststream", "uvicorn.access", "aiokafka")
    kept = [(root, root.handlers[:], root.level, root.propagate)] + [
        (logging.getLogger(n), logging.getLogger(n).handlers[:], logging.getLogger(n).level,
         logging.getLogger(n).propagate) for n in names
    ]  # fmt: skip
    yield
    for logger, handlers, level, propagate in kept:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_every_logger_writes_one_line_in_the_services_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    own = logging.getLogger("faststream")
    own.addHandler(logging.StreamHandler())  # as FastStream comes
    own.propagate = False
    silenced = logging.getLogger("uvicorn.access")
    silenced.handlers.clear()  # as uvicorn's --no-access-log leaves it
    silenced.propagate = False
    configure_logging(ServiceSettings())
    logging.getLogger("attendance.processor").info("took partitions [0]")
    own.info("subscriber started")
    silenced.info("GET /healthz 200")
    logging.getLogger("aiokafka").info("connecting")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO attendance.processor: took partitions [0]",
        "INFO faststream: subscriber started",
    ]


def test_the_kafka_brokers_lines_take_the_services_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(ServiceSettings())
    broker = make_broker("127.0.0.1:9092", client_id="test", metrics=CollectorRegistry())
    logger = broker.config.logger.params_storage.get_logger(context=broker.config.context)
    assert logger is not None
    logger.log(logging.WARNING, "subscriber stopped")
    out, err = capsys.readouterr()
    assert (out, [line.split(" ", 2)[2] for line in err.splitlines()]) == (
        "",
        ["WARNING faststream.kafka: subscriber stopped"],
    )


def test_json_lines_when_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    configure_logging(ServiceSettings())
    logging.getLogger("reporting.app").info("not shown")
    logging.getLogger("reporting.app").warning("states unknown")
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line) | {"asctime": "-"} == {
        "asctime": "-",
        "levelname": "WARNING",
        "name": "reporting.app",
        "message": "states unknown",
    }
