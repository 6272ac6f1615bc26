"""The tests under load run one after the other on one pytest-xdist worker
(`tests.fault.fleet.UNDER_LOAD`, `bin/test`'s `--dist loadgroup`). Checked on pytest-xdist
itself: pytest 9.2 made it stop grouping without a word, and two fleets under load at once
on two cores is a different test."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fault.fleet import UNDER_LOAD


def test_the_tests_of_one_group_run_on_one_worker(tmp_path: Path) -> None:
    (group,) = UNDER_LOAD.args
    for module in ("test_first", "test_second"):
        (tmp_path / f"{module}.py").write_text(
            textwrap.dedent(f"""
                import pytest
                pytestmark = pytest.mark.xdist_group({group!r})
                def test_one(): pass
                def test_two(): pass
            """)
        )
    options = ["-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider", "-c", os.devnull]
    command = [sys.executable, "-m", "pytest", *options, "--rootdir", str(tmp_path), str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    workers = re.findall(r"^\[(gw\d+)\] .* PASSED", run.stdout, flags=re.MULTILINE)
    assert (run.returncode, len(workers), len(set(workers))) == (0, 4, 1), run.stdout
