from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.cli._run import run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "init", ".")
    assert code == 0
    pd.DataFrame({"id": [1, 2, 3], "city": ["a", "b", None], "amount": [1.5, 2.5, 3.5]}).to_csv(
        tmp_path / "sales.csv", index=False
    )
    return tmp_path


def test_ingest_list_show_diff_export_head(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "ingest", "sales.csv", "--name", "sales")
    assert code == 0 and "Created sales:1" in out and "3 rows" in out
    code, out, _ = run(capsys, "data", "ingest", "sales.csv", "--name", "sales")
    assert code == 0 and "Unchanged" in out
    pd.DataFrame({"id": [1, 2, 3, 4], "amount": [1.0, 2.0, 3.0, 4.0]}).to_csv(project / "sales.csv", index=False)
    code, out, _ = run(capsys, "data", "ingest", "sales.csv", "--name", "sales", "--json")
    assert code == 0 and json.loads(out)["version"] == 2

    code, out, _ = run(capsys, "data", "list", "--json")
    assert json.loads(out)[0]["name"] == "sales" and json.loads(out)[0]["latest"] == 2
    code, out, _ = run(capsys, "data", "list")
    assert "sales" in out

    code, out, _ = run(capsys, "data", "show", "sales:1", "--json")
    shown = json.loads(out)
    assert shown["row_count"] == 3 and shown["versions"] == [1, 2]
    assert shown["stats"]["columns"]["city"]["nulls"] == 1
    assert shown["lineage"]["upstream"][0]["relation"] == "ingested_from"
    code, out, _ = run(capsys, "data", "show", "sales")
    assert code == 0 and "sales:2" in out and "amount" in out and "ingest_date" in out

    code, out, _ = run(capsys, "data", "diff", "sales:1", "sales:2")
    assert code == 0 and "- city" in out and "(+1)" in out

    code, out, _ = run(capsys, "data", "export", "sales:1", "--to", "out/s.parquet")
    assert code == 0 and pd.read_parquet(project / "out" / "s.parquet")["id"].tolist() == [1, 2, 3]

    code, out, _ = run(capsys, "data", "head", "sales", "-n", "2", "--json")
    assert [r["id"] for r in json.loads(out)] == [1, 2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "ingest", "missing.csv", "--name", "x"], "file not found"),
        (["data", "ingest", "bad.csv", "--name", "x"], "Expected 2 columns"),
        (["data", "ingest", "sales.csv", "--name", "bad name"], "dataset name 'bad name' is not allowed"),
        (["data", "show", "nope"], "no dataset named 'nope'"),
        (["data", "show", "sales:9"], "no dataset named 'sales'"),
        (["data", "ingest", "sales.csv", "--name", "x", "--format", "xls"], "unknown format 'xls'"),
    ],
)
def test_user_errors_are_one_line_exit_1(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (project / "bad.csv").write_text("a,b\n1,2\n1,2,3\n")
    code, _out, err = run(capsys, *argv)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    run(capsys, "data", "list", "--json")
    assert run(capsys, "data", "list", "--json")[1].strip() == "[]"


def test_usage_error_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "data", "ingest", "sales.csv")
    assert code == 2 and "--name" in err


def test_no_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "data", "list")
    assert code == 1 and "loopml init" in err


def test_console_script_prints_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loopml", "data", "show", "x"], cwd=tmp_path,
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: no loopml workspace")
    assert "Traceback" not in proc.stderr


@pytest.fixture
def html_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers every GET with a web page, not JSON."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/orders"
    server.shutdown()
    server.server_close()


def test_bad_sources_and_specs_fail_cleanly(
    project: Path, capsys: pytest.CaptureFixture[str], html_server: str
) -> None:
    (project / "rules.yaml").write_text("columns:\n  id: {maxx: 3}\n")
    cases = [
        (["data", "ingest", html_server, "--name", "x"], "expected JSON"),
        (["data", "ingest", "postgresql+psycopg://u:pw@127.0.0.1:1/db", "--table", "t", "--name", "x"], "connect"),
        (["data", "ingest", "nosuchdialect://x/y", "--table", "t", "--name", "x"], "nosuchdialect"),
        (["data", "ingest", "sales.csv", "--name", "x", "--expect", "rules.yaml"], "unknown rule 'maxx'"),
        (["data", "ingest", "sales.csv", "--name", "x", "--expect", "nope.yaml"], "nope.yaml"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv)
        assert code == 1, argv
        assert message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "pw@" not in err
    assert run(capsys, "data", "list", "--json")[1].strip() == "[]"


def test_expectations_quarantine_and_fail_on_invalid(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "rules.yaml").write_text("columns:\n  amount: {type: float, max: 3.0}\n")
    code, _, err = run(capsys, "data", "ingest", "sales.csv", "--name", "s", "--expect", "rules.yaml",
                       "--fail-on-invalid")
    assert code == 1 and "1 of 3 rows break the expectations" in err
    assert run(capsys, "data", "list", "--json")[1].strip() == "[]"
    code, out, _ = run(capsys, "data", "ingest", "sales.csv", "--name", "s", "--expect", "rules.yaml")
    assert code == 0 and "1 quarantined" in out and "amount: max 3.0" in out
    code, out, _ = run(capsys, "data", "show", "s", "--quarantine", "5", "--json")
    shown = json.loads(out)
    assert shown["quarantine_count"] == 1
    assert shown["quarantine_rows"][0]["_rule"] == "amount: max 3.0"
