"""A connection point's agent: heartbeats with the learner count the room reports."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("point-agent")
except PackageNotFoundError:  # run from a source tree without installing
    __version__ = "0+unknown"
