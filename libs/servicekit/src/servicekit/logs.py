"""Logging, configured once for every service (`service_app` does it).

One handler on stderr and one format for the service's own lines, FastStream's and uvicorn's:
plain lines by default, one JSON object a line with `LOG_FORMAT=json` (for a log collector).
`LOG_LEVEL` sets the level, INFO by default; the Kafka client stays at WARNING, since at INFO
it narrates every connection and rebalance, and so does httpx, which at INFO logs every request
with its whole URL: a webhook's carries its secret (reporting.webhooks).
"""

import logging.config

from servicekit.settings import ServiceSettings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Loggers that come with a handler (and a format) of their own. One without handlers that does
# not propagate was silenced on purpose (uvicorn's `--no-access-log`), and stays so.
OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream")
QUIETER = {"aiokafka": "WARNING", "httpx": "WARNING"}


def configure_logging(settings: ServiceSettings) -> None:
    formatter: dict[str, str] = (
        {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": JSON_FIELDS}
        if settings.log_format == "json"
        else {"format": FORMAT}
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"service": formatter},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "service",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"level": settings.log_level, "handlers": ["stderr"]},
            "loggers": {name: {"level": level} for name, level in QUIETER.items()},
        }
    )
    for name in OWN_HANDLERS:
        logger = logging.getLogger(name)
        if logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
