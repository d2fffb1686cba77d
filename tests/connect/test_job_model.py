"""The Connect job model: status names, running vs terminal, Insert/Inserts, IsFinished trusted, verdicts."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_norce.connect.jobs import (
    RUNNING_STATUSES,
    TERMINAL_STATUSES,
    ImportAnswer,
    JobLog,
    JobState,
    JobStatus,
    check_jobs,
    error_lines,
    judge_jobs,
    known_import_method,
    status_label,
    unsuccessful,
)
from airflow_provider_norce.exceptions import NorceAPIError, NorceJobError


def test_status_names_and_sets():
    assert [s.label for s in JobStatus] == [
        "Initialized",
        "Succeeded",
        "Failed",
        "Validation failed",
        "Validating",
        "Queued",
    ]
    assert set(RUNNING_STATUSES) == {1, 5, 6} and set(TERMINAL_STATUSES) == {2, 3, 4}
    assert status_label(9) == "Unknown status 9"


@pytest.mark.parametrize("field", ["Insert", "Inserts"])
def test_both_insert_spellings_are_read(field):
    state = JobState.from_response(
        "7", {"StatusId": 2, "IsFinished": True, field: 12, "Updates": 3, "Fail": 1}
    )
    assert (state.inserts, state.updates, state.fail, state.succeeded) == (12, 3, 1, True)


def test_is_finished_is_trusted_over_the_status():
    # Norce says Succeeded but not finished yet (a job still writing): keep waiting
    assert not JobState.from_response("1", {"StatusId": 2, "IsFinished": False}).is_finished
    # no IsFinished at all: the documented terminal states decide
    assert JobState.from_response("1", {"StatusId": "3"}).is_finished
    assert not JobState.from_response("1", {"StatusId": 6}).is_finished
    # finished with a status nobody documented: finished, not a success
    odd = JobState.from_response("1", {"StatusId": 9, "IsFinished": True})
    assert odd.is_finished and not odd.succeeded and odd.status == "Unknown status 9"


def test_not_a_job_object_is_an_api_error():
    with pytest.raises(NorceAPIError, match="job 5"):
        JobState.from_response("5", ["nope"])


@pytest.mark.parametrize("payload", [{}, {"Message": "OK"}, {"StatusId": None, "IsFinished": "no"}])
def test_an_object_without_a_job_state_is_an_api_error_not_a_running_job(payload):
    """Polled as running, ``{}`` would keep a sensor or trigger waiting until its timeout."""
    with pytest.raises(NorceAPIError, match=r"job 5 .*not a job"):
        JobState.from_response("5", payload)


def test_summary_is_small_and_caps_error_lines():
    state = JobState.from_response("8", {"StatusId": 3, "IsFinished": True, "Fail": 40})
    summary = state.summary([f"line {i}" for i in range(30)])
    assert len(summary["errors"]) == 20 and summary["errors_omitted"] == 10
    assert summary["status"] == "Failed"


def test_error_lines_keep_only_severity_3():
    log = [
        {"SeverityId": 1, "Message": "queued"},
        {"SeverityId": 2, "Message": "row skipped"},
        {"SeverityId": 3, "Message": "Row 2: broken"},
        {"SeverityId": "3", "Message": "The job failed"},
    ]
    assert error_lines(log) == ["Row 2: broken", "The job failed"]
    assert error_lines({"not": "a list"}) == []


def test_check_jobs_verdicts():
    ok = {"status_id": 2, "status": "Succeeded"}
    invalid = {"status_id": 4, "status": "Validation failed", "errors": ["All 3 item(s) failed validation"]}
    failed = {"status_id": 3, "status": "Failed", "errors": ["Row 1: boom"], "fail": 1}
    check_jobs({"1": ok})
    check_jobs({"1": ok, "2": invalid}, allow_validation_failures=True)
    with pytest.raises(NorceJobError, match="job 2 ended Validation failed"):
        check_jobs({"1": ok, "2": invalid})
    with pytest.raises(
        NorceJobError, match=r"1 of 2 job\(s\) did not succeed: job 3 ended Failed .*Row 1: boom"
    ):
        check_jobs({"1": ok, "3": failed}, allow_validation_failures=True)


def test_one_verdict_for_trigger_events_and_task_judging():
    """``unsuccessful`` is the rule: the trigger asks it with the defaults, ``check_jobs`` with the task's
    arguments; an undocumented end state is never a success."""
    jobs = {
        "1": {"status_id": 2, "row_errors": 0},
        "2": {"status_id": 2, "row_errors": 3},
        "3": {"status_id": 3},
        "4": {"status_id": 4},
        "9": {"status_id": 9},
    }
    assert unsuccessful(jobs) == ["3", "4", "9"]
    assert unsuccessful(jobs, allow_validation_failures=True) == ["3", "9"]
    assert unsuccessful(jobs, fail_on_row_errors=True) == ["2", "3", "4", "9"]
    with pytest.raises(
        NorceJobError, match=r"3 of 5 job\(s\) did not succeed: job 3 ended Failed.*job 9 ended"
    ):
        check_jobs(jobs)


def test_import_answer():
    answer = ImportAnswer.from_response(
        {
            "StatusCode": "OK",
            "JobId": "1001",
            "ValidationSummary": {
                "NrOfItemsInTotal": 4,
                "NrOfValidationFailures": 1,
                "Messages": ["Row 2: x"],
            },
        },
        "batch 1",
    )
    assert (answer.job_id, answer.total, answer.validation_failures, answer.messages) == (
        "1001",
        4,
        1,
        ["Row 2: x"],
    )
    with pytest.raises(NorceJobError, match=r"batch 3 but answered without a JobId.*may have been received"):
        ImportAnswer.from_response({"StatusCode": "OK"}, "batch 3")


def test_known_import_methods():
    assert known_import_method("product/importonhands") == "Product/ImportOnhands"
    with pytest.raises(ValueError, match="Customer/ImportCompanies"):
        known_import_method("Order/ImportOrders")


PUBLISHED_LOG = [  # the shape Job/GetLog documents: zone-less timestamps, ImportedRow as the row's text
    {
        "SeverityId": 1,
        "Message": "Starting import.",
        "TimeStamp": "2023-07-31T16:24:37.967",
        "ImportedRow": None,
    },
    {
        "SeverityId": 3,
        "Message": "Sku 999999 does not exist.",
        "TimeStamp": "2023-07-31T16:24:38.001",
        "ImportedRow": '{"PartNo":"999999","WarehouseCode":"MAIN","LocationCode":"MAIN","OnhandValue":3}',
    },
    {
        "SeverityId": 2,
        "Message": "Culture xx-XX unknown; culture skipped.",
        "TimeStamp": "2023-07-31T16:24:38.2",
    },
    {
        "SeverityId": 1,
        "Message": "Import finished.",
        "TimeStamp": "2023-07-31T16:24:39.000",
        "ImportedRow": None,
    },
]


def test_job_log_reads_warning_and_error_lines_with_their_row_text():
    log = JobLog.from_response(PUBLISHED_LOG)
    assert log.errors == [
        'Sku 999999 does not exist. [row: {"PartNo":"999999","WarehouseCode":"MAIN","LocationCode":"MAIN",'
        '"OnhandValue":3}]'
    ]
    assert log.warnings == ["Culture xx-XX unknown; culture skipped."]
    assert JobLog.from_response({"Message": "not a list"}) == JobLog(errors=[], warnings=[])
    assert JobLog.from_response([None, "x", {"SeverityId": "2", "Message": ""}]).warnings == ["(no message)"]


def test_a_long_imported_row_is_cut():
    row = '{"PartNo":"1","Infos":"' + "x" * 5000 + '"}'
    (line,) = JobLog.from_response([{"SeverityId": 3, "Message": "bad", "ImportedRow": row}]).errors
    assert len(line) < 400 and line.startswith('bad [row: {"PartNo":"1"')


def test_a_succeeded_job_with_row_errors_passes_unless_asked_and_its_counts_reach_the_summary(caplog):
    state = JobState.from_response("11", {"StatusId": 2, "IsFinished": True, "Insert": 0, "Updates": 4})
    jobs = {"11": state.summary(JobLog.from_response(PUBLISHED_LOG))}
    assert (jobs["11"]["row_errors"], jobs["11"]["row_warnings"]) == (1, 1)
    logger = logging.getLogger("norce-test")
    with caplog.at_level(logging.WARNING, logger="norce-test"):
        summary = judge_jobs(jobs, logger, allow_validation_failures=False, fail_on_row_errors=False)
    assert "job 11 ended Succeeded, but its log has 1 Error line(s)" in caplog.text
    assert "Sku 999999 does not exist." in caplog.text
    assert (summary["succeeded"], summary["row_errors"], summary["row_warnings"]) == (1, 1, 1)
    with pytest.raises(NorceJobError, match=r"job 11 ended Succeeded with 1 row\(s\) not imported.*999999"):
        judge_jobs(jobs, logger, allow_validation_failures=False, fail_on_row_errors=True)


def test_a_clean_succeeded_job_passes_with_fail_on_row_errors(caplog):
    clean = [PUBLISHED_LOG[0], PUBLISHED_LOG[-1]]
    jobs = {
        "12": JobState.from_response("12", {"StatusId": 2, "IsFinished": True}).summary(
            JobLog.from_response(clean)
        )
    }
    logger = logging.getLogger("norce-test")
    with caplog.at_level(logging.WARNING, logger="norce-test"):
        summary = judge_jobs(jobs, logger, allow_validation_failures=False, fail_on_row_errors=True)
    assert caplog.text == "" and summary["row_errors"] == summary["row_warnings"] == 0
