"""parts_run: every part in a forked process of its own, reports and results back in the caller, failures raised."""

import os
import signal

import pytest
from django.db import transaction

from crm.processes import PartFailed, parts_run
from customers.models import Customer


def test_each_part_runs_in_a_process_of_its_own_and_its_reports_reach_the_caller():
    # given
    reports = []

    def work(part, report):
        for _ in range(part):
            report(1)
        return os.getpid(), part * 10

    # when
    results = parts_run(work, [1, 2, 3], progress=reports.append)

    # then: results in the order of the parts, none computed here, each in another process
    assert [value for _, value in results] == [10, 20, 30]
    pids = {pid for pid, _ in results}
    assert len(pids) == 3 and os.getpid() not in pids
    assert reports == [1] * 6


def test_a_part_that_raises_is_raised_with_its_traceback_after_the_others_end(tmp_path):
    # given
    def work(part, _report):
        if part == "bad":
            raise ValueError("no such chunk")
        (tmp_path / part).write_text("done")
        return part

    # when / then
    with pytest.raises(PartFailed) as raised:
        parts_run(work, ["first", "bad", "last"])
    assert "part 1:" in str(raised.value)
    assert "ValueError: no such chunk" in str(raised.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "last"]


@pytest.mark.parametrize("death", ["exit", "kill"])
def test_a_part_whose_process_dies_is_a_failure_not_a_hang(death):
    # given
    def work(part, _report):
        if part:
            if death == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        return "fine"

    # when / then
    with pytest.raises(PartFailed, match=r"part 1: its process died \(exit code (3|-9)\)"):
        parts_run(work, [0, 1])


@pytest.mark.postgres  # the embedded test database lives in the memory of one process
@pytest.mark.django_db(transaction=True)
def test_parts_write_on_connections_of_their_own_and_the_caller_goes_on_with_its_own():
    # given
    Customer.objects.create(name="before")

    # when
    def work(part, _report):
        Customer.objects.create(name=f"part {part}")
        return Customer.objects.count()

    parts_run(work, [0, 1])

    # then: the caller's connection was closed before the fork and simply reconnects
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["before", "part 0", "part 1"]


@pytest.mark.django_db
def test_it_refuses_to_run_inside_a_transaction():
    # given: a row the parts could not see
    with transaction.atomic():
        Customer.objects.create(name="uncommitted")

        # when / then
        with pytest.raises(RuntimeError, match="inside a transaction"):
            parts_run(lambda part, report: part, [0, 1])
