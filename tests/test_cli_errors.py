"""What a scheduler sees when a command fails: a non-zero exit status and one line naming the problem and the fix."""
import json
import logging
import os
import subprocess
import sys

import pytest

from deid.cli import EXIT_FAILED, EXIT_USAGE, main


def deid(*args, env=None):
    """The real entry point, as a scheduler runs it."""
    return subprocess.run([sys.executable, "-m", "deid.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def assert_one_line(result, status, *words):
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_summary_on_a_missing_root(tmp_path):
    assert_one_line(deid("summary", "--root", str(tmp_path / "nowhere")), EXIT_USAGE, "nowhere", "--root")


def test_summary_on_a_folder_without_the_jobs_tables(tmp_path):
    assert_one_line(deid("summary", "--root", str(tmp_path)), EXIT_USAGE, "none of the job's tables", "--root")


def test_annotate_a_missing_input(tmp_path):
    result = deid("annotate", "--input", str(tmp_path / "notes.jsonl"), "--output", str(tmp_path / "out.jsonl"))
    assert_one_line(result, EXIT_USAGE, "notes.jsonl", "does not exist")
    assert not (tmp_path / "out.jsonl").exists()


def test_annotate_a_folder_read_as_a_text_file(tmp_path):
    result = deid("annotate", "--input", str(tmp_path), "--input-format", "text", "--output", str(tmp_path / "o"))
    assert_one_line(result, EXIT_USAGE, str(tmp_path), "is a folder")


def test_annotate_an_input_of_an_unknown_kind(tmp_path):
    (tmp_path / "notes.docx").write_bytes(b"PK")
    result = deid("annotate", "--input", str(tmp_path / "notes.docx"), "--output", str(tmp_path / "o"))
    assert_one_line(result, EXIT_USAGE, "notes.docx", "--input-format")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_annotate_an_unreadable_input(tmp_path):
    src = tmp_path / "notes.jsonl"
    src.write_text('{"id": 1, "text": "x"}\n', encoding="utf-8")
    src.chmod(0)
    result = deid("annotate", "--input", str(src), "--output", str(tmp_path / "o"))
    assert_one_line(result, EXIT_USAGE, "notes.jsonl", "permission denied")


def test_annotate_without_the_key():
    env = {k: v for k, v in os.environ.items() if k != "DEID_SECRET"}
    assert_one_line(deid("annotate", "--text", "患者张三", env=env), EXIT_USAGE, "DEID_SECRET", "export")


def test_a_bad_config(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text("components: [regex, telepathy]\n", encoding="utf-8")
    assert_one_line(deid("annotate", "--text", "x", "--config", str(config)), EXIT_USAGE, "telepathy")


def test_a_csv_in_another_encoding_names_the_option(tmp_path):
    src = tmp_path / "notes.csv"
    src.write_bytes("id,text\n1,患者张三，男\n".encode("gb18030"))
    result = deid("annotate", "--input", str(src), "--output", str(tmp_path / "o"))
    assert_one_line(result, EXIT_USAGE, "notes.csv", "not utf-8", "--encoding gb18030")
    assert "张" not in result.stderr


def test_a_jsonl_with_a_bad_line_fails_the_run(tmp_path):
    src = tmp_path / "notes.jsonl"
    src.write_text('{"id": 1, "text": "患者张三"}\n{"id": 2, "text": "秘密\n', encoding="utf-8")
    result = deid("annotate", "--input", str(src), "--output", str(tmp_path / "out.jsonl"))
    assert_one_line(result, EXIT_FAILED, "annotated 1 notes, 1 errors", "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert "spans" in rows[0] and rows[1]["line"] == 2 and "秘密" not in rows[1]["error"]


def test_debug_shows_the_traceback(tmp_path):
    result = deid("--debug", "summary", "--root", str(tmp_path / "nowhere"))
    assert result.returncode == EXIT_USAGE
    assert "Traceback" in result.stderr and result.stderr.splitlines()[-1].startswith("error: ")


def test_usage_errors_exit_2():
    assert deid("annotate", "--input-format", "pdf").returncode == EXIT_USAGE
    assert_one_line(deid("annotate"), EXIT_USAGE, "--text", "--input")


def test_quiet_and_log_level_set_the_logging_level(tmp_path):
    root = logging.getLogger()
    before = root.level
    try:
        assert main(["--log-level", "debug", "summary", "--root", str(tmp_path)]) == EXIT_USAGE
        assert root.level == logging.DEBUG
        assert main(["--quiet", "summary", "--root", str(tmp_path)]) == EXIT_USAGE
        assert root.level == logging.ERROR
    finally:
        root.setLevel(before)
