"""Checking operator and sensor arguments once they are rendered.

Templated arguments arrive as strings (``"{{ params.wait }}"`` renders to ``"true"``), so every flag and
number is read here, the same way for every operator and sensor, with an error naming the task and the
argument instead of a truthy string silently meaning yes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The spellings of true and false read from text, in operator arguments and connection extras alike.
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def bool_word(text: str) -> bool | None:
    """``True``/``False`` for one of the usual spellings (any case, spaces around), else ``None``."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def as_bool(value: Any, field: str, task_id: str) -> bool:
    """A bool, or one of the usual true/false spellings; anything else is an error.

    An empty string is false: a template like ``"{{ params.get('full') or '' }}"`` renders to it.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = bool_word(value) if value.strip() else False
        if word is not None:
            return word
    raise ValueError(f"Task {task_id!r}: {field} must be true or false, got {value!r}")


def positive_int(value: Any, field: str, task_id: str) -> int:
    """A whole number of at least 1 (a rendered ``"500"`` included)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"Task {task_id!r}: {field} must be a whole number of at least 1, got {value!r}")
    return number


def positive_float(value: Any, field: str, task_id: str) -> float:
    """A number of seconds above 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number > 0:
        raise ValueError(f"Task {task_id!r}: {field} must be a number of seconds above 0, got {value!r}")
    return number


def finite_seconds(value: Any, field: str, task_id: str) -> float:
    """A finite number of seconds above 0 (``inf`` and ``nan`` too are refused: no wait can use them)."""
    import math

    number = positive_float(value, field, task_id)
    if not math.isfinite(number):
        raise ValueError(
            f"Task {task_id!r}: {field} must be a finite number of seconds above 0, got {value!r}"
        )
    return number


def non_negative_float(value: Any, field: str, task_id: str) -> float:
    """A number of seconds of at least 0 (``0``: every time); text, ``nan`` and negatives are refused."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number >= 0:
        raise ValueError(
            f"Task {task_id!r}: {field} must be a number of seconds of at least 0, got {value!r}"
        )
    return number


#: The HTTP methods a Norce call can use; anything else is a typo (``FETCH``) or a template gone wrong.
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def http_method(value: Any, task_id: str) -> str:
    """An HTTP method, upper-cased (a rendered ``"post"`` included)."""
    method = str(value or "GET").strip().upper() if isinstance(value, str) or value is None else ""
    if method not in HTTP_METHODS:
        raise ValueError(
            f"Task {task_id!r}: method must be one of {', '.join(HTTP_METHODS)}, got {value!r}"[:400]
        )
    return method


def mapping_or_none(value: Any, field: str, task_id: str, example: str) -> dict[str, Any] | None:
    """``None`` or a mapping with text keys (a rendered template that became a string is refused)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(
            f"Task {task_id!r}: {field} must be a mapping such as {example}, got {type(value).__name__} "
            f"{value!r}"[:400]
        )
    return value


def conn_id(value: Any, task_id: str) -> str:
    """The id of a connection: non-empty text (a template that rendered to nothing is refused here)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"Task {task_id!r}: norce_conn_id is {value!r}; give the id of an Airflow connection of type "
            "norce, such as 'norce_default' (if it is a template, check what it renders to)"
        )
    return value.strip()


def field_names(select: str | Sequence[str] | None) -> list[str] | None:
    """``$select`` as a list of field names (a comma-separated string or a list); ``None`` for none.

    One rule for the export's query, its file's columns and what lineage reports as the schema."""
    if select is None or select == "":
        return None
    items = select.split(",") if isinstance(select, str) else list(select)
    names = [str(name).strip() for name in items if str(name).strip()]
    return names or None
