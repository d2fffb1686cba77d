"""Fixtures of the browser tests: Airflow 3.3's API server (the UI), the Norce simulator, headless Chromium.

Skipped, with the reason, below Airflow 3.3 (the React form these tests read is 3.3's) and when Selenium,
Chromium or chromedriver are missing, except on CI (``CI`` set, as every CI service sets it): there
``.ci/os-packages`` installs Chromium and its driver, so a missing one is a broken set-up and fails.

Screenshots go to ``$NORCE_ARTIFACTS_DIR/browser`` when that is set (CI uploads the folder), otherwise to
``artifacts/browser/`` in the repository; each test prints the paths it wrote.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[2]
MINIMUM_AIRFLOW = (3, 3)
#: Where Debian/Ubuntu (``chromium``), older Ubuntu (``chromium-browser``) and Google's packages put them.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _airflow_version() -> tuple[int, ...]:
    from airflow import __version__

    return tuple(int(part) for part in __version__.split(".")[:2] if part.isdigit())


def _missing(reason: str) -> None:
    """Skip on a workstation; fail on CI, where the browser is installed on purpose."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: .ci/os-packages should have installed it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_binaries() -> tuple[str, str]:
    """The Chromium and chromedriver executables (``NORCE_CHROMIUM``/``NORCE_CHROMEDRIVER`` override)."""
    if _airflow_version() < MINIMUM_AIRFLOW:
        pytest.skip(f"the connection form tested here is Airflow {'.'.join(map(str, MINIMUM_AIRFLOW))}'s UI")
    try:
        import selenium  # noqa: F401
    except ImportError:
        _missing("selenium is not installed (pip install 'selenium>=4.30,<5')")
    browser = os.environ.get("NORCE_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = os.environ.get("NORCE_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        _missing("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    return str(browser), str(driver)


@pytest.fixture(scope="module")
def simulator() -> Iterator[object]:
    """The Norce simulator the form's connection points at (in this process; the API server and the CLI
    reach it over HTTP on 127.0.0.1)."""
    from airflow_provider_norce.simulator.server import NorceSimulator

    sim = NorceSimulator().start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def airflow_ui(
    browser_binaries: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """Airflow's API server (the UI) on a free port, its own home and SQLite database; stopped afterwards."""
    from airflow_ui import AirflowUI

    with AirflowUI(tmp_path_factory.mktemp("airflow-ui")) as ui:
        yield ui


@pytest.fixture
def browser(browser_binaries: tuple[str, str]) -> Iterator[object]:
    """Headless Chromium through the OS's chromedriver; quit on every exit path."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = browser_binaries
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    base = os.environ.get("NORCE_ARTIFACTS_DIR")
    folder = Path(base) / "browser" if base else ROOT / "artifacts" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
