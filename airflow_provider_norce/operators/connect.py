"""``NorceConnectImportOperator``: post items to a Norce Connect import method, in batches, and wait.

Three promises shape this module:

* **Memory stays bounded.** Items come from a list (or an XComArg) or from a JSON-array / JSON-lines file
  (local or any ``ObjectStoragePath``), which is streamed: one batch is in memory at a time, and the
  array parser reads chunks with ``json.JSONDecoder.raw_decode`` instead of ``json.load``.
* **Nothing is posted twice.** Every batch's job id is written to durable task state before the next
  batch is posted (Airflow 3.3 ``task_state_store``; below 3.3 an Airflow Variable ledger). A retried
  try re-uses the recorded job ids and posts only batches that never got one. A POST whose answer was
  lost (timeout, 5xx) is recorded as *uncertain* and never re-posted by a retry: Norce may have it.
* **A full-file import is one job.** ``FullFile: true`` deactivates everything the import does not name,
  so two jobs would deactivate each other's items: the whole input is counted (and validated) before
  anything is posted, and a full file larger than ``batch_size`` is refused.

The hook does all HTTP; this module reads items, keeps the ledger and decides.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_norce.exceptions import NorceAPIError, NorceJobError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_norce.hooks.norce import NorceHook
    from airflow_provider_norce.jobs import ImportAnswer

log = logging.getLogger(__name__)

HEADER_NAME = "X-StormConnect-Header"
#: Bytes read from an items file at a time.
CHUNK_BYTES = 1 << 16
#: One item may not exceed this many characters (a malformed file must not be read whole into memory).
MAX_ITEM_CHARS = 32 << 20
#: Durable-state key of batch ``i`` (task_state_store, Airflow 3.3+). Renaming it breaks in-flight retries.
STATE_KEY = "norce_connect_batch_{index}"
VARIABLE_PREFIX = "norce_connect_ledger"


class NorceConnectImportOperator(BaseOperator):
    """Import items into Norce Connect, batch by batch, and (by default) wait for the jobs.

    :param import_method: a Connect import method such as ``Product/ImportOnhands`` (see
        :data:`~airflow_provider_norce.jobs.IMPORT_METHODS`).
    :param items: the items, a list of JSON objects (or an XComArg resolving to one).
    :param items_path: instead of ``items``: a local path or an ``ObjectStoragePath`` URI of a JSON-array or
        JSON-lines file; streamed, never loaded whole.
    :param connect_header: the ``X-StormConnect-Header`` object; ``AccountId`` is required, ``FullFile``
        defaults to ``false``.
    :param batch_size: items per POST (one Connect job each). A full-file import is never split.
    :param wait_for_completion: wait until every job is finished and fail if one did not succeed.
    :param allow_validation_failures: accept items Norce refused in validation (the import answer's
        ``ValidationSummary``) and jobs that ended Validation failed; they are logged, not fatal.
    :param poll_interval: seconds between two job status checks.
    :param timeout: seconds to wait for the jobs (``None``: no limit beyond the task's own).
    :param deferrable: wait in the triggerer (:class:`~airflow_provider_norce.triggers.norce.NorceJobTrigger`)
        instead of a worker slot.
    :param norce_conn_id: the Airflow connection (type ``norce``).

    Returns (XCom) the list of job ids, one per batch, as strings.
    """

    template_fields: Sequence[str] = (
        "import_method",
        "items",
        "items_path",
        "connect_header",
        "batch_size",
        "wait_for_completion",
        "allow_validation_failures",
        "poll_interval",
        "timeout",
        "norce_conn_id",
    )
    template_fields_renderers = {"connect_header": "json", "items": "json"}
    ui_color = "#e8f4f0"

    def __init__(
        self,
        *,
        import_method: str,
        items: Any = None,
        items_path: Any = None,
        connect_header: dict[str, Any] | str,
        batch_size: int = 1000,
        wait_for_completion: bool = True,
        allow_validation_failures: bool = False,
        poll_interval: float = 10,
        timeout: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        norce_conn_id: str = "norce_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (items is None) == (items_path is None):
            raise ValueError(
                f"Task {self.task_id!r}: give exactly one of items (a list of JSON objects) or items_path "
                "(a JSON-array or JSON-lines file)"
            )
        if isinstance(import_method, str) and "{{" not in import_method:
            from airflow_provider_norce.jobs import known_import_method

            import_method = known_import_method(import_method)
        if isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size < 1:
            raise ValueError(f"Task {self.task_id!r}: batch_size must be at least 1, got {batch_size}")
        self.import_method = import_method
        self.items = items
        self.items_path = items_path
        self.connect_header = connect_header
        self.batch_size = batch_size
        self.wait_for_completion = wait_for_completion
        self.allow_validation_failures = allow_validation_failures
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.norce_conn_id = norce_conn_id

    # -- execution ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> list[str]:
        from airflow_provider_norce.hooks.norce import NorceHook
        from airflow_provider_norce.jobs import known_import_method, wait_for_jobs

        method = known_import_method(self.import_method)
        header, full_file = build_connect_header(self.connect_header, self.task_id)
        batch_size = _positive_int(self.batch_size, "batch_size", self.task_id)
        source = self._source()
        total = source.count()  # reads (and validates) the whole input before anything is posted
        if full_file and total == 0:
            raise NorceJobError(
                f"Task {self.task_id!r}: a FullFile import of no items would deactivate every "
                f"{method} item in Norce; refusing. Check {source.name}."
            )
        if full_file and total > batch_size:
            raise NorceJobError(
                f"Task {self.task_id!r}: FullFile is true and {source.name} holds {total} items, more than "
                f"batch_size={batch_size}. A full-file import must be ONE job (each job would deactivate the "
                "items of the others), so nothing was posted. Raise batch_size to at least "
                f"{total}, or set FullFile to false in connect_header."
            )
        hook = NorceHook(self.norce_conn_id)
        ledger = ledger_for(context)
        answers = self._post_batches(hook, method, header, source, batch_size, total, ledger)
        job_ids = [a.job_id for a in answers]
        self._check_validation(answers)
        if not job_ids or not _bool(self.wait_for_completion, "wait_for_completion", self.task_id):
            ledger.clear(len(job_ids))
            return job_ids
        poll_interval = _positive_float(self.poll_interval, "poll_interval", self.task_id)
        timeout = None if self.timeout is None else _positive_float(self.timeout, "timeout", self.task_id)
        if self.deferrable:
            from airflow_provider_norce.triggers.norce import NorceJobTrigger

            self.defer(
                trigger=NorceJobTrigger(
                    norce_conn_id=self.norce_conn_id,
                    job_ids=job_ids,
                    poll_interval=poll_interval,
                    timeout=timeout,
                ),
                method_name="execute_complete",
                kwargs={"job_ids": job_ids},
                # Airflow's own deadline only backs up the trigger's, whose event says more.
                timeout=None
                if timeout is None
                else timedelta(seconds=timeout + max(60.0, 2 * poll_interval)),
            )
        jobs = wait_for_jobs(hook, job_ids, poll_interval=poll_interval, timeout=timeout)
        return self._finish(jobs, job_ids, ledger)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, job_ids: list[str] | None = None
    ) -> list[str]:
        """Resume after :class:`NorceJobTrigger`: fail with the jobs' error lines, or return the job ids."""
        if not isinstance(event, dict):
            raise NorceJobError(f"Task {self.task_id!r}: resumed without a trigger event ({event!r})")
        jobs = event.get("jobs") or {}
        job_ids = [str(j) for j in (job_ids or list(jobs))]
        status = event.get("status")
        if status in ("timeout", "error"):
            raise NorceJobError(
                f"Task {self.task_id!r}: {event.get('message')}. A retry of this task waits for the same "
                "job ids; nothing is posted again."
            )
        self.log.info("Norce Connect: %s", event.get("message"))
        return self._finish(jobs, job_ids, ledger_for(context))

    def _finish(self, jobs: dict[str, dict[str, Any]], job_ids: list[str], ledger: Ledger) -> list[str]:
        from airflow_provider_norce.jobs import check_jobs

        for job in jobs.values():
            self.log.info(
                "Norce Connect job %s: %s (inserted %s, updated %s, failed %s)",
                job.get("job_id"),
                job.get("status"),
                job.get("inserts"),
                job.get("updates"),
                job.get("fail"),
            )
        check_jobs(
            jobs,
            allow_validation_failures=_bool(
                self.allow_validation_failures, "allow_validation_failures", self.task_id
            ),
        )
        ledger.clear(len(job_ids))
        return job_ids

    # -- posting -----------------------------------------------------------------------------------

    def _source(self) -> ItemSource:
        if self.items_path is not None:
            return FileItems(self.items_path, self.task_id)
        return ListItems(self.items, self.task_id)

    def _post_batches(
        self,
        hook: NorceHook,
        method: str,
        header: str,
        source: ItemSource,
        batch_size: int,
        total: int,
        ledger: Ledger,
    ) -> list[ImportAnswer]:
        from airflow_provider_norce.jobs import fetch_job_state

        url = hook.service_url("connect") + method
        batches = -(-total // batch_size)
        answers: list[ImportAnswer] = []
        for index, batch in enumerate(_batched(iter(source), batch_size)):
            first = index * batch_size + 1
            where = f"batch {index + 1} of {batches} (items {first}-{first + len(batch) - 1}) of {method}"
            body = json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            digest = hashlib.sha256(body).hexdigest()
            recorded = ledger.get(index)
            if recorded is not None and recorded.get("sha256") == digest:
                if recorded.get("uncertain"):
                    raise NorceJobError(
                        f"Task {self.task_id!r}: {where} was posted on an earlier try, but its answer was "
                        "lost, so Norce may have received it. It is not posted again automatically. Check "
                        f"the Connect jobs in Norce Admin; if it never arrived, delete {ledger.describe(index)} "
                        "and clear this task."
                    )
                state = fetch_job_state(hook, recorded["job_id"])
                if not (state.is_finished and not state.succeeded):
                    self.log.info(
                        "Norce Connect: %s already has job %s (%s) from an earlier try; not posting it again",
                        where,
                        state.job_id,
                        state.status,
                    )
                    answers.append(_answer_from_record(recorded))
                    continue
                self.log.warning(
                    "Norce Connect: job %s of %s ended %s on an earlier try and applied nothing; posting "
                    "the batch again",
                    state.job_id,
                    where,
                    state.status,
                )
            elif recorded is not None:
                self.log.warning(
                    "Norce Connect: %s differs from what an earlier try posted as job %s; posting the new "
                    "content",
                    where,
                    recorded.get("job_id") or "(unknown)",
                )
            answer = self._post(hook, url, header, body, where, index, digest, ledger)
            ledger.set(
                index,
                {
                    "job_id": answer.job_id,
                    "sha256": digest,
                    "validation_failures": answer.validation_failures,
                    "messages": answer.messages,
                },
            )
            self.log.info("Norce Connect: %s posted as job %s", where, answer.job_id)
            answers.append(answer)
        return answers

    def _post(
        self,
        hook: NorceHook,
        url: str,
        header: str,
        body: bytes,
        where: str,
        index: int,
        digest: str,
        ledger: Ledger,
    ) -> ImportAnswer:
        from airflow_provider_norce.jobs import ImportAnswer

        try:
            response = hook.run(
                url,
                method="POST",
                data=body,
                headers={HEADER_NAME: header, "Content-Type": "application/json; charset=utf-8"},
            )
            payload = response.json()
        except NorceAPIError as err:
            refused = err.status_code is not None and err.status_code < 500
            never_sent = err.status_code is None and err.retryable  # refused connection, connect timeout
            if refused or never_sent:
                raise NorceJobError(
                    f"Task {self.task_id!r}: Norce did not accept {where}: {err}. Nothing of this batch was "
                    "imported; a retry posts it again."
                ) from None
            ledger.set(index, {"uncertain": True, "sha256": digest})
            raise NorceJobError(
                f"Task {self.task_id!r}: the POST of {where} got no usable answer ({err}). The import may "
                "have been received by Norce: check the Connect jobs in Norce Admin before re-running. A "
                "retry of this task will not post this batch again."
            ) from None
        except ValueError:
            ledger.set(index, {"uncertain": True, "sha256": digest})
            raise NorceJobError(
                f"Task {self.task_id!r}: Norce answered the POST of {where} with a body that is not JSON. The "
                "import may have been received: check the Connect jobs in Norce Admin before re-running."
            ) from None
        try:
            return ImportAnswer.from_response(payload, where)
        except NorceJobError:
            ledger.set(index, {"uncertain": True, "sha256": digest})
            raise

    def _check_validation(self, answers: list[ImportAnswer]) -> None:
        failing = [a for a in answers if a.validation_failures > 0]
        if not failing:
            return
        count = sum(a.validation_failures for a in failing)
        details = "; ".join(
            f"job {a.job_id}: {a.validation_failures} item(s): " + " | ".join(a.messages) for a in failing
        )
        if _bool(self.allow_validation_failures, "allow_validation_failures", self.task_id):
            self.log.warning("Norce Connect refused %d item(s) in validation (allowed): %s", count, details)
            return
        raise NorceJobError(
            f"Task {self.task_id!r}: Norce Connect refused {count} item(s) in validation ({details}). The "
            "valid items of these jobs are still imported by Norce. Fix the items, or pass "
            "allow_validation_failures=True to accept this.",
            job_id=failing[0].job_id,
        )


def _answer_from_record(recorded: dict[str, Any]) -> ImportAnswer:
    from airflow_provider_norce.jobs import ImportAnswer

    return ImportAnswer(
        job_id=str(recorded["job_id"]),
        total=None,
        validation_failures=int(recorded.get("validation_failures") or 0),
        messages=list(recorded.get("messages") or []),
    )


# -- the header ------------------------------------------------------------------------------------


def build_connect_header(header: Any, task_id: str) -> tuple[str, bool]:
    """The one-line ``X-StormConnect-Header`` JSON and whether it is a full-file import."""
    if isinstance(header, str):
        try:
            header = json.loads(header)
        except ValueError as err:
            raise ValueError(f"Task {task_id!r}: connect_header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError(
            f"Task {task_id!r}: connect_header must be an object such as "
            '{"AccountId": 1, "FullFile": false}, got ' + type(header).__name__
        )
    header = dict(header)
    account = header.get("AccountId")
    if account is None or account == "":
        raise ValueError(
            f"Task {task_id!r}: connect_header lacks AccountId, which Norce Connect requires; set it to your "
            'Norce account id, e.g. {"AccountId": 1}'
        )
    if isinstance(account, str) and account.strip().isdigit():
        header["AccountId"] = account = int(account.strip())
    if not isinstance(account, int) or isinstance(account, bool):
        raise ValueError(f"Task {task_id!r}: connect_header AccountId must be an integer, got {account!r}")
    header["FullFile"] = _bool(header.get("FullFile", False), "connect_header FullFile", task_id)
    return json.dumps(header, separators=(",", ":"), ensure_ascii=True), header["FullFile"]


# -- item sources ----------------------------------------------------------------------------------


class ItemSource(Protocol):
    name: str

    def count(self) -> int: ...

    def __iter__(self) -> Iterator[dict[str, Any]]: ...


class ListItems:
    """Items given as a list (or an XComArg resolved to one)."""

    def __init__(self, items: Any, task_id: str) -> None:
        self.name = "items"
        if isinstance(items, (str, bytes)):
            raise ValueError(
                f"Task {task_id!r}: items must be a list of JSON objects, got a string; pass the XComArg "
                "itself (not a Jinja string), or use items_path for a file"
            )
        try:
            self.items = list(items)
        except TypeError:
            raise ValueError(
                f"Task {task_id!r}: items must be a list of JSON objects, got {type(items).__name__}"
            ) from None
        for number, item in enumerate(self.items, start=1):
            if not isinstance(item, dict):
                raise ValueError(
                    f"Task {task_id!r}: item {number} of items is a {type(item).__name__}, not a JSON object"
                )

    def count(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.items)


class FileItems:
    """Items streamed from a JSON-array or JSON-lines file, local or on any ``ObjectStoragePath``."""

    def __init__(self, path: Any, task_id: str) -> None:
        self.path = path
        self.task_id = task_id
        self.name = f"items_path {str(path)!r}"

    def _open(self) -> Any:
        path = self.path
        try:
            if isinstance(path, str) and path.startswith("file://"):
                from urllib.parse import urlsplit
                from urllib.request import url2pathname

                path = url2pathname(
                    urlsplit(path).path
                )  # local: no fsspec needed (and 3.0's upath refuses it)
            if isinstance(path, str) and "://" not in path:
                return open(path, "rb")
            if isinstance(path, str):
                from airflow.providers.common.compat.sdk import ObjectStoragePath

                path = ObjectStoragePath(path)
            return path.open("rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"Task {self.task_id!r}: {self.name} does not exist") from None

    def count(self) -> int:
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self._open() as stream:
            for number, item in enumerate(iter_json_items(stream, self.name), start=1):
                if not isinstance(item, dict):
                    raise ValueError(
                        f"Task {self.task_id!r}: item {number} of {self.name} is a {type(item).__name__}, "
                        "not a JSON object"
                    )
                yield item


def _batched(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


# -- streaming JSON --------------------------------------------------------------------------------


class _Buffer:
    """Decoded text of a byte stream, read a chunk at a time; ``pos`` is the read position in ``text``."""

    def __init__(self, stream: Any, name: str, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.stream = stream
        self.name = name
        self.chunk_bytes = chunk_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""
        self.pos = 0
        self.offset = 0  # characters dropped before ``text``
        self.eof = False

    def more(self) -> None:
        """Read one more chunk, dropping what was consumed."""
        if self.eof:
            return
        data = self.stream.read(self.chunk_bytes)
        try:
            decoded = self.decoder.decode(data or b"", final=not data)
        except UnicodeDecodeError as err:
            raise ValueError(f"{self.name} is not UTF-8 text ({err})") from None
        self.offset += self.pos
        self.text = self.text[self.pos :] + decoded
        self.pos = 0
        if not data:
            self.eof = True
        if len(self.text) > MAX_ITEM_CHARS:
            raise ValueError(
                f"{self.name}: one item is larger than {MAX_ITEM_CHARS >> 20} MiB of text at character "
                f"{self.offset}, or the file is malformed there"
            )

    def peek(self) -> str | None:
        """The next non-whitespace character (not consumed), or None at the end."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            self.pos = pos
            if pos < len(text):
                return text[pos]
            if self.eof:
                return None
            self.more()

    def where(self) -> str:
        return f"character {self.offset + self.pos}"


_DECODER = json.JSONDecoder()


def iter_json_items(stream: Any, name: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Any]:
    """The values of a JSON array, or of JSON lines, from a binary stream; bounded memory either way."""
    buf = _Buffer(stream, name, chunk_bytes)
    first = buf.peek()
    if first is None:
        return
    if first == "[":
        yield from _array_items(buf)
    else:
        yield from _json_lines(buf)


def _array_items(buf: _Buffer) -> Iterator[Any]:
    buf.pos += 1  # the "["
    number = 0
    while True:
        char = buf.peek()
        if char is None:
            raise ValueError(f"{buf.name}: the JSON array ends without its closing ']' after item {number}")
        if char == "]":
            buf.pos += 1
            break
        if number:
            if char != ",":
                raise ValueError(f"{buf.name}: expected ',' or ']' after item {number} at {buf.where()}")
            buf.pos += 1
            if buf.peek() in (None, "]"):
                raise ValueError(f"{buf.name}: expected an item after ',' at {buf.where()}")
        number += 1
        yield _decode_value(buf, number)
    if buf.peek() is not None:
        raise ValueError(
            f"{buf.name}: unexpected content after the JSON array's closing ']' at {buf.where()}"
        )


def _decode_value(buf: _Buffer, number: int) -> Any:
    """One JSON value at ``buf.pos``, reading more while it may be incomplete."""
    while True:
        try:
            value, end = _DECODER.raw_decode(buf.text, buf.pos)
        except json.JSONDecodeError as err:
            incomplete = err.msg.startswith("Unterminated string") or err.pos >= len(buf.text) - 8
            if buf.eof or not incomplete:
                raise ValueError(
                    f"{buf.name}: item {number} is not valid JSON at character {buf.offset + err.pos}: {err.msg}"
                ) from None
        else:
            # A value ending exactly at the buffer's end may continue in the next chunk (a number).
            if end < len(buf.text) or buf.eof:
                buf.pos = end
                return value
        buf.more()


def _json_lines(buf: _Buffer) -> Iterator[Any]:
    line_number = 0
    while True:
        newline = buf.text.find("\n", buf.pos)
        if newline < 0 and not buf.eof:
            buf.more()
            continue
        end = len(buf.text) if newline < 0 else newline
        line = buf.text[buf.pos : end]
        buf.pos = end + 1 if newline >= 0 else end
        line_number += 1
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError as err:
                raise ValueError(f"{buf.name}: line {line_number} is not valid JSON ({err})") from None
        if newline < 0:
            return


# -- the durable ledger ----------------------------------------------------------------------------


class Ledger(Protocol):
    """Which batches of this task instance already have a job, across tries."""

    def get(self, index: int) -> dict[str, Any] | None: ...

    def set(self, index: int, entry: dict[str, Any]) -> None: ...

    def clear(self, count: int) -> None: ...

    def describe(self, index: int) -> str: ...


class TaskStateLedger:
    """Airflow 3.3+: one ``task_state_store`` key per batch; it survives retries of the task instance."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, index: int) -> dict[str, Any] | None:
        value = self.store.get(STATE_KEY.format(index=index))
        return value if isinstance(value, dict) else None

    def set(self, index: int, entry: dict[str, Any]) -> None:
        try:
            self.store.set(STATE_KEY.format(index=index), entry)
        except Exception:
            # The POST went through; failing the task now would make a retry post it again.
            log.exception("Could not record Norce Connect batch %d (%s) in task state", index, entry)

    def clear(self, count: int) -> None:
        for index in range(count):
            try:
                self.store.delete(STATE_KEY.format(index=index))
            except Exception:
                log.warning("Could not delete task state key %s", STATE_KEY.format(index=index))

    def describe(self, index: int) -> str:
        return (
            f"the task state key {STATE_KEY.format(index=index)!r} of this task instance (REST API: DELETE "
            ".../taskInstances/{task_id}/state-store/{key})"
        )


class VariableLedger:
    """Below Airflow 3.3: one Airflow Variable per task instance (a JSON object keyed by batch index).

    Variables outlive a try (XCom does not: a task's XComs are cleared when its next try starts). The
    Variable is deleted when the task succeeds.
    """

    def __init__(self, key: str, variable: Any = None) -> None:
        if variable is None:
            from airflow.providers.common.compat.sdk import Variable

            variable = Variable
        self.key = key
        self.variable = variable
        self._entries: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            raw = self.variable.get(self.key, default=None)
            try:
                loaded = json.loads(raw) if raw else {}
            except ValueError:
                loaded = {}
            self._entries = loaded if isinstance(loaded, dict) else {}
        return self._entries

    def get(self, index: int) -> dict[str, Any] | None:
        value = self._load().get(str(index))
        return value if isinstance(value, dict) else None

    def set(self, index: int, entry: dict[str, Any]) -> None:
        entries = self._load()
        entries[str(index)] = entry
        try:
            self.variable.set(
                self.key,
                json.dumps(entries, separators=(",", ":")),
                description="airflow-provider-norce: Connect job ids by batch, so a retry does not re-post",
            )
        except Exception:
            log.exception(
                "Could not record Norce Connect batch %d (%s) in Variable %s", index, entry, self.key
            )

    def clear(self, count: int) -> None:
        try:
            self.variable.delete(self.key)
        except Exception:
            log.warning("Could not delete the Variable %s", self.key)
        self._entries = {}

    def describe(self, index: int) -> str:
        return f"the Airflow Variable {self.key!r}"


class MemoryLedger:
    """No durable state at all (a context without a task instance): nothing survives this call."""

    def __init__(self) -> None:
        self.entries: dict[int, dict[str, Any]] = {}

    def get(self, index: int) -> dict[str, Any] | None:
        return self.entries.get(index)

    def set(self, index: int, entry: dict[str, Any]) -> None:
        self.entries[index] = entry

    def clear(self, count: int) -> None:
        self.entries.clear()

    def describe(self, index: int) -> str:
        return "nothing (no durable state here)"


def ledger_for(context: Any, variable: Any = None) -> Ledger:
    """The most durable ledger the running Airflow offers to this task instance."""
    store = context.get("task_state_store") if hasattr(context, "get") else None
    if store is not None:
        return TaskStateLedger(store)
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None and getattr(ti, "run_id", None) is not None:
        return VariableLedger(variable_key(ti), variable)
    log.warning("No durable task state here: a retry of this import would post it again")
    return MemoryLedger()


def variable_key(ti: Any) -> str:
    """``norce_connect_ledger.{dag}.{task}.{map index}.{run}``, shortened with a hash beyond 250 chars."""
    map_index = getattr(ti, "map_index", -1)
    key = f"{VARIABLE_PREFIX}.{ti.dag_id}.{ti.task_id}.{-1 if map_index is None else map_index}.{ti.run_id}"
    if len(key) > 250:
        key = key[:200] + "." + hashlib.sha256(key.encode()).hexdigest()[:16]
    return key


# -- coercion of templated values ------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _bool(value: Any, field: str, task_id: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"Task {task_id!r}: {field} must be true or false, got {value!r}")


def _positive_int(value: Any, field: str, task_id: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"Task {task_id!r}: {field} must be a whole number of at least 1, got {value!r}")
    return number


def _positive_float(value: Any, field: str, task_id: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not number > 0:
        raise ValueError(f"Task {task_id!r}: {field} must be a number of seconds above 0, got {value!r}")
    return number
