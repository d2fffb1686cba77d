"""Job results on the wire: Job/GetLog is read for every finished job, a Succeeded one too, never for a
running one (a Succeeded job can hide rows Norce did not import, and its log is the only place that says so)."""

from __future__ import annotations

from norce_wire import BASE, TOKEN_URL, token_body

from airflow_provider_norce.connect.jobs import poll_jobs

JOB_GET = f"{BASE}/commerce/connect/4.0/Job/Get"
JOB_LOG = f"{BASE}/commerce/connect/4.0/Job/GetLog"


def test_poll_reads_the_log_of_finished_jobs_only(requests_mock, hook_factory):
    requests_mock.post(TOKEN_URL, json=token_body())
    jobs = {
        "7": {"JobId": 7, "StatusId": 2, "IsFinished": True, "Insert": 0, "Updates": 2, "Fail": 0},
        "8": {"JobId": 8, "StatusId": 1, "IsFinished": False},
    }
    requests_mock.get(JOB_GET, json=lambda request, _: jobs[request.qs["id"][0]])
    requests_mock.get(
        JOB_LOG,
        json=[
            {
                "SeverityId": 1,
                "Message": "Starting import.",
                "TimeStamp": "2026-11-20T02:30:01.5",
                "ImportedRow": None,
            },
            {
                "SeverityId": 3,
                "Message": "Sku 999 not found.",
                "TimeStamp": "2026-11-20T02:30:02",
                "ImportedRow": '{"PartNo":"999"}',
            },
            {
                "SeverityId": 1,
                "Message": "Import finished.",
                "TimeStamp": "2026-11-20T02:30:03",
                "ImportedRow": None,
            },
        ],
    )
    summaries, running = poll_jobs(hook_factory(), ["7", "8"])
    assert running == ["8"]
    assert summaries["7"]["status"] == "Succeeded" and summaries["7"]["row_errors"] == 1
    assert summaries["7"]["errors"] == ['Sku 999 not found. [row: {"PartNo":"999"}]']
    assert "row_errors" not in summaries["8"]
    log_calls = [r.qs["id"] for r in requests_mock.request_history if r.path.endswith("/job/getlog")]
    assert log_calls == [["7"]]
