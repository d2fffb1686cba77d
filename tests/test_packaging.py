"""Packaging as users expect it, checked without building: one version, the Apache 2.0 licence declared
and shipped, and a changelog that covers the version the package reports.

``bash .ci/package`` builds the sdist and wheel and checks their contents and a clean install; these tests
are the cheap part that runs with the suite, so a release mistake is caught before anyone builds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import airflow_provider_norce
from airflow_provider_norce.get_provider_info import get_provider_info

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "airflow-provider-norce"
VERSION = airflow_provider_norce.__version__
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte (the text Debian ships as
# /usr/share/common-licenses/Apache-2.0 and many wheels as their LICENSE).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_version_is_written_only_in_the_package(pyproject: dict[str, Any]) -> None:
    project = pyproject["project"]
    assert "version" not in project, "pyproject.toml [project] must not repeat the version; it is dynamic"
    assert "version" in project.get("dynamic", []), "pyproject.toml [project] dynamic must list 'version'"
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "airflow_provider_norce.__version__"
    }
    assert Version(VERSION) >= Version("0.1.0"), f"__version__ {VERSION!r} is not a valid release version"
    assignments = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "airflow_provider_norce").rglob("*.py")
        if re.search(r"^__version__\s*=", path.read_text(encoding="utf-8"), re.M)
    )
    assert assignments == ["airflow_provider_norce/__init__.py"], (
        f"__version__ is assigned in {assignments}; keep it in airflow_provider_norce/__init__.py only"
    )


def test_installed_metadata_and_provider_info_report_that_version() -> None:
    installed = importlib.metadata.version(DIST_NAME)
    assert installed == VERSION, (
        f"the installed {DIST_NAME} says {installed}, airflow_provider_norce.__version__ says {VERSION}: "
        "reinstall the checkout (pip install -e . or bash .ci/setup after removing the venv's .installed-* stamp)"
    )
    assert get_provider_info()["versions"] == [VERSION]


def test_license_file_is_the_full_apache_2_0_text() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert re.search(r"Apache License\s+Version 2\.0, January 2004", text), (
        "LICENSE is not the Apache License 2.0"
    )
    headings = [
        "1. Definitions.",
        "2. Grant of Copyright License.",
        "3. Grant of Patent License.",
        "4. Redistribution.",
        "5. Submission of Contributions.",
        "6. Trademarks.",
        "7. Disclaimer of Warranty.",
        "8. Limitation of Liability.",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
    ]
    missing = [heading for heading in headings if heading not in text]
    assert not missing, f"LICENSE lacks {missing}: restore the full text of the Apache License 2.0"
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == APACHE_2_0_SHA256, (
        "LICENSE differs from the Apache License 2.0 as published (LICENSE-2.0.txt): restore it verbatim"
    )


def test_pyproject_declares_the_license_as_an_spdx_expression(pyproject: dict[str, Any]) -> None:
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    # PEP 639: a licence expression and a License :: classifier together are an error for build backends.
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    setuptools = next(
        Requirement(r) for r in pyproject["build-system"]["requires"] if Requirement(r).name == "setuptools"
    )
    assert not setuptools.specifier.contains("76.1.0"), "setuptools < 77 cannot read license = 'Apache-2.0'"
    assert setuptools.specifier.contains("77.0.3")


def test_installed_metadata_carries_the_license() -> None:
    metadata = importlib.metadata.metadata(DIST_NAME)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in (metadata.get_all("License-File") or [])


def _changelog_versions() -> list[str]:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return re.findall(r"^## \[([^\]]+)\]", text, re.M)


def test_changelog_covers_the_current_version() -> None:
    versions = _changelog_versions()
    assert VERSION in versions, (
        f"CHANGELOG.md has no '## [{VERSION}]' section for the version the package reports"
    )
    released = [v for v in versions if v != "Unreleased"]
    if "Unreleased" in versions:
        assert versions[0] == "Unreleased", "'## [Unreleased]' must be the first section of CHANGELOG.md"
    assert released == sorted(released, key=Version, reverse=True), (
        f"CHANGELOG.md sections {released} are not newest first"
    )
    assert Version(released[0]) == Version(VERSION), (
        f"CHANGELOG.md's newest release is {released[0]} but the package says {VERSION}: "
        "bump __version__ in airflow_provider_norce/__init__.py with the changelog section"
    )
