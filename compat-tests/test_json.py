"""JSONSerializer: producers and the worker (--serializer json) agree on payloads and results."""

from rq import Queue
from rq.job import Job, JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer

from compat import ECHO, FAIL, NOOP, last_line, strict_diff


def json_queue(conn):
    return Queue("default", connection=conn, serializer=JSONSerializer)


def test_json_echo_round_trip(conn, worker):
    q = json_queue(conn)
    args = (1, -7, 2**64 + 1, 1.5, "héllo ☃", None, True, False, [1, [2, "x"]], {"a": {"b": [None]}})
    kwargs = {"call_sid": "CA1", "n": 3, "empty": {}, "list": []}
    job = q.enqueue(ECHO, args=args, kwargs=kwargs)
    worker.run_burst("default", "--serializer", "json")

    job = Job.fetch(job.id, connection=conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FINISHED
    assert strict_diff({"args": list(args), "kwargs": kwargs}, job.return_value()) is None, job.return_value()
    assert job.latest_result().type == Result.Type.SUCCESSFUL


def test_json_tuples_come_back_as_lists(conn, worker):
    q = json_queue(conn)
    job = q.enqueue(ECHO, (1, 2), nested=(3, (4,)))
    worker.run_burst("default", "--serializer", "json")

    assert strict_diff({"args": [[1, 2]], "kwargs": {"nested": [3, [4]]}}, job.return_value()) is None


def test_json_noop_returns_none(conn, worker):
    q = json_queue(conn)
    job = q.enqueue(NOOP)
    worker.run_burst("default", "--serializer", "json")

    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() is None
    assert job.latest_result().type == Result.Type.SUCCESSFUL


def test_json_failure(conn, worker):
    q = json_queue(conn)
    job = q.enqueue(FAIL, message="boom")
    worker.run_burst("default", "--serializer", "json")

    job = Job.fetch(job.id, connection=conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FAILED
    assert q.failed_job_registry.get_job_ids() == [job.id]
    assert last_line(job.latest_result().exc_string) == "RuntimeError: boom"
    assert last_line(job.exc_info) == "RuntimeError: boom"
