"""What the user reads when a local pipeline run fails: the error raised in the step, not kfp's
log."""

from modelfactory.local.pipeline_runs import _ProgressLog


def scan(tmp_path, text):
    events = []
    log = _ProgressLog(tmp_path / "run.log", events.append)
    log.write(text)
    log.close()
    return log, events


def test_step_progress_and_the_failing_step_are_reported(tmp_path):
    log, events = scan(
        tmp_path,
        (
            "12:00:00.000 - INFO - Executing task \x1b[96m'ingest-data'\x1b[0m\n"
            "12:00:01.000 - INFO - Task \x1b[96m'ingest-data'\x1b[0m"
            " finished with status \x1b[92mSUCCESS\x1b[0m\n"
            "12:00:01.000 - INFO - Executing task \x1b[96m'validate-data'\x1b[0m\n"
            "12:00:02.000 - ERROR - Task \x1b[96m'validate-data'\x1b[0m"
            " finished with status \x1b[91mFAILURE\x1b[0m\n"
        ),
    )
    assert [(e.task, e.status) for e in events] == [
        ("ingest-data", "running"),
        ("ingest-data", "SUCCESS"),
        ("validate-data", "running"),
        ("validate-data", "FAILURE"),
    ]
    assert log.failed_task == "validate-data"
    assert (tmp_path / "run.log").read_text().count("Executing task") == 2


def test_a_validation_error_keeps_its_list_of_problems(tmp_path):
    log, _ = scan(
        tmp_path,
        (
            "    Traceback (most recent call last):\n"
            "    modelfactory.errors.DataValidationError: bad.csv: 2 problem(s) found:\n"
            "      - missing column(s): euribor3m\n"
            "      - column 'age': expected numbers, found 'fifty' in rows 3, 8\n"
            "    \n"
        ),
    )
    assert log.user_error() == (
        "bad.csv: 2 problem(s) found:\n  - missing column(s): euribor3m\n"
        "  - column 'age': expected numbers, found 'fifty' in rows 3, 8"
    )


def test_errors_of_any_modelfactory_module_are_shown(tmp_path):
    log, _ = scan(
        tmp_path, "modelfactory.forecasting.factory.FactoryError: 3 of 4 stores failed (75%)\n"
    )
    assert log.user_error() == "3 of 4 stores failed (75%)"


def test_other_exceptions_are_left_to_the_log(tmp_path):
    log, _ = scan(tmp_path, "ValueError: something internal\n")
    assert log.user_error() is None
