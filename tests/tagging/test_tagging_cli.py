"""``b24app classify`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from b24app.tagging.cli import classify_command

from .conftest import FakeChatServer

GOOD = {
    "id": "a1",
    "text": "Запишите на маникюр завтра в 15",
    "received_at": "2026-03-14T10:00:00+03:00",
}


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "leads.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(classify_command, list(args), env=env)


def test_cli_good_file_exit_code(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    assert _run(str(path)).exit_code == 0


def test_cli_good_file_record(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    record = json.loads(_run(str(path)).stdout.strip())
    assert (record["id"], record["tags"], record["desired_time"]) == (
        "a1",
        ["booking"],
        "2026-03-15T15:00:00+03:00",
    )


def test_cli_record_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    record = json.loads(_run(str(path)).stdout.strip())
    assert set(record) >= {
        "id",
        "tags",
        "urgent",
        "name",
        "service",
        "desired_time",
        "desired_time_precision",
        "confidence",
        "engine",
    }


def test_cli_missing_received_at_defaults_to_now(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps({"id": 7, "text": "Сколько стоит УЗИ?"})])
    assert json.loads(_run(str(path)).stdout)["tags"] == ["price"]


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    return _write(
        tmp_path,
        [
            json.dumps(GOOD, ensure_ascii=False),
            "{not json",
            json.dumps({"text": "без id"}, ensure_ascii=False),
            json.dumps({"id": "x", "received_at": "2026-03-14T10:00:00+03:00"}),
            json.dumps({"id": "y", "text": "привет", "received_at": "вчера"}),
            "",
            json.dumps({"id": "z", "text": "Отмените запись на пятницу"}),
        ],
    )


def test_cli_bad_lines_exit_code(mixed_file: Path) -> None:
    assert _run(str(mixed_file)).exit_code == 1


def test_cli_bad_lines_are_skipped(mixed_file: Path) -> None:
    ids = [json.loads(line)["id"] for line in _run(str(mixed_file)).stdout.splitlines()]
    assert ids == ["a1", "z"]


def test_cli_bad_lines_report_line_numbers(mixed_file: Path) -> None:
    stderr = _run(str(mixed_file)).stderr
    assert all(f"line {n}:" in stderr for n in (2, 3, 4, 5))


def test_cli_bad_date_message(mixed_file: Path) -> None:
    assert "bad received_at" in _run(str(mixed_file)).stderr


def test_cli_missing_file_is_usage_error(tmp_path: Path) -> None:
    assert _run(str(tmp_path / "nope.jsonl")).exit_code == 2


def test_cli_directory_is_usage_error(tmp_path: Path) -> None:
    assert _run(str(tmp_path)).exit_code == 2


def test_cli_bad_timezone_is_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    assert _run(str(path), "--tz", "Mars/Olympus").exit_code == 2


def test_cli_model_without_env_is_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    env = {"OTKLIK_LLM_BASE_URL": "", "OTKLIK_LLM_MODEL": ""}
    assert _run(str(path), "--engine", "model", env=env).exit_code == 2


def test_cli_eval_prints_table(tmp_path: Path) -> None:
    labelled = dict(GOOD, tags=["booking"], urgent=False, name=None, service="маникюр")
    path = _write(tmp_path, [json.dumps(labelled, ensure_ascii=False)])
    assert "macro-F1" in _run(str(path), "--eval").stdout


def test_cli_eval_needs_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    assert _run(str(path), "--eval").exit_code != 0


def test_cli_model_engine_uses_server(
    tmp_path: Path, chat_server: FakeChatServer
) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    env = {
        "OTKLIK_LLM_BASE_URL": chat_server.base_url,
        "OTKLIK_LLM_MODEL": "test-model",
        "OTKLIK_LLM_API_KEY": "test-key",
    }
    record = json.loads(_run(str(path), "--engine", "model", env=env).stdout)
    assert record["engine"] == "model"


def _labelled(**changes) -> str:
    record = dict(GOOD, tags=["booking"], urgent=False, name=None, service="маникюр")
    record.update(changes)
    return json.dumps(record, ensure_ascii=False)


def test_cli_eval_no_labels_exit_code(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps(GOOD, ensure_ascii=False)])
    assert _run(str(path), "--eval").exit_code == 2


def test_cli_eval_empty_file_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    assert _run(str(path), "--eval").exit_code == 2


def test_cli_empty_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    assert "no records" in _run(str(path)).stderr


def test_cli_empty_file_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    assert _run(str(path)).exit_code == 0


def test_cli_eval_unknown_tag_warns(tmp_path: Path) -> None:
    path = _write(tmp_path, [_labelled(), _labelled(id="a2", tags=["bookng"])])
    assert "unknown tag(s) 'bookng'" in _run(str(path), "--eval").stderr


def test_cli_eval_unknown_tag_is_not_scored(tmp_path: Path) -> None:
    path = _write(tmp_path, [_labelled(), _labelled(id="a2", tags=["bookng"])])
    assert "records             1" in _run(str(path), "--eval").stdout


def test_cli_eval_duplicate_id_warns(tmp_path: Path) -> None:
    path = _write(tmp_path, [_labelled(), _labelled()])
    assert "duplicate id 'a1' (first on line 1)" in _run(str(path), "--eval").stderr


def test_cli_eval_duplicate_id_exit_code(tmp_path: Path) -> None:
    path = _write(tmp_path, [_labelled(), _labelled()])
    assert _run(str(path), "--eval").exit_code == 1


def test_cli_eval_small_file_macro_f1(tmp_path: Path) -> None:
    path = _write(tmp_path, [_labelled()])
    assert "macro-F1            1.000" in _run(str(path), "--eval").stdout


def test_cli_missing_received_at_warns_once(tmp_path: Path) -> None:
    lines = [json.dumps({"id": n, "text": "Сколько стоит УЗИ?"}) for n in (1, 2, 3)]
    path = _write(tmp_path, lines)
    assert _run(str(path)).stderr.count("current time") == 1
