"""Sphinx configuration of the airflow-provider-norce docs (MyST Markdown pages, API reference by autodoc).

Build: ``bash .ci/docs`` (warnings are errors: ``sphinx-build -W --keep-going -n``).
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # the checkout's package, also when it is not installed in editable mode
# autodoc imports Airflow: without a home of its own it would read (and create) ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", os.path.join(ROOT, "build", "docs-airflow-home"))

from airflow_provider_norce import __version__  # noqa: E402

project = "airflow-provider-norce"
author = "airflow-provider-norce developers"
copyright = "airflow-provider-norce developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# docs/examples/ holds files the pages include; they are not pages themselves.
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]

# MyST: ``{literalinclude}`` and the other directives in fenced blocks; heading anchors so that links such as
# ``connection.md#tls-and-proxies`` resolve (GitHub renders the same anchors).
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4

# autodoc: the documented order is the source's; the signature's type hints move into the description, where
# napoleon/reST ``:param x:`` fields are.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Our docstrings use reST fields (``:param x:``), which napoleon passes through. Its Google-style parsing stays
# off: it reads an attribute docstring such as ``#: Storm only: the Connect URL ...`` as "type: text".
napoleon_google_docstring = False
napoleon_numpy_docstring = False

# Nitpicky mode (-n) checks every cross-reference. The names below belong to third-party libraries that publish
# no inventory this build can reach (no intersphinx: the build must work offline), or to typing internals.
# Our own names are never ignored: a broken reference to this package is an error.
nitpick_ignore_regex = [
    (r"py:.*", r"(airflow|requests|httpx|tenacity|pendulum|fsspec|upath|croniter|jwt|redis)(\..*)?"),
    (
        r"py:.*",
        r"(datetime|collections\.abc|typing|typing_extensions|logging|os|pathlib|socket|threading|"
        r"collections|http\.server|socketserver|concurrent\.futures|asyncio|contextlib|types|io|json|enum|abc)(\..*)?",
    ),
    (
        r"py:.*",
        r"(Path|Any|Callable|Iterator|Iterable|Mapping|Sequence|AsyncIterator|Self|Literal|"
        r"TypeVar|ClassVar|NoReturn|TextIO|BinaryIO|IO|Generator|MutableMapping|Protocol)",
    ),
    # Bare names of Airflow's and tenacity's types, as type hints imported under TYPE_CHECKING render them.
    (
        r"py:.*",
        r"(Context|PokeReturnValue|TriggerEvent|ObjectStoragePath|RetryDecision|ExceptionRetryPolicy|"
        r"BaseOperator|BaseSensorOperator|BaseTrigger|BaseHook|Connection|wait_base|RetryCallState|timedelta)",
    ),
    # Python builtins and standard exceptions named in docstrings and annotations.
    (
        r"py:(class|exc|obj|data)",
        r"(int|str|float|bool|bytes|dict|list|tuple|set|frozenset|object|None|"
        r"type|Exception|ValueError|TypeError|KeyError|RuntimeError|OSError|TimeoutError|ConnectionError)",
    ),
]

try:
    import furo  # noqa: F401

    html_theme = "furo"
except ImportError:  # the docs extra installs furo; Sphinx's own theme keeps a bare Sphinx building
    html_theme = "alabaster"
html_title = f"airflow-provider-norce {release}"


def _package_names() -> set[str]:
    """Every dotted name defined in ``airflow_provider_norce``: modules, their attributes, class members."""
    import importlib
    import pkgutil

    import airflow_provider_norce

    names: set[str] = set()
    for info in pkgutil.walk_packages(airflow_provider_norce.__path__, "airflow_provider_norce."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # a module this Airflow cannot import (task_policy below 3.3)
            continue
        names.add(info.name)
        for attr, value in vars(module).items():
            names.add(f"{info.name}.{attr}")
            if isinstance(value, type) and value.__module__ == info.name:
                names.update(f"{info.name}.{attr}.{member}" for member in vars(value))
    return names


_PACKAGE_NAMES: set[str] = set()


def _resolve_own_names(app, env, node, contnode):
    """Resolve references to this package's own names that Sphinx cannot find by itself.

    Why: docstrings and type hints imported under ``TYPE_CHECKING`` name our objects by a short or relative name
    (``NorceJobError``, ``.identity``), which Sphinx looks up only in the current module; and they refer to
    internal modules the API reference leaves out. So:

    * a name that ends exactly one documented object of ``airflow_provider_norce`` links to it;
    * else a name that exists in the package's code (a module, an attribute, a class member) is shown as code,
      without a link;
    * anything else (a renamed or misspelt name) stays a warning, which fails the build.
    """
    from sphinx.util.nodes import make_refnode

    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    domain = env.get_domain("py")
    documented = {**domain.modules, **domain.objects}
    matches = [
        name
        for name in documented
        if name.startswith("airflow_provider_norce.") and (name == target or name.endswith("." + target))
    ]
    if len(matches) == 1:
        entry = documented[matches[0]]
        return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0])
    if not _PACKAGE_NAMES:
        _PACKAGE_NAMES.update(_package_names())
    if target in _PACKAGE_NAMES or any(name.endswith("." + target) for name in _PACKAGE_NAMES):
        return contnode
    return None


def setup(app):
    app.connect("missing-reference", _resolve_own_names)
