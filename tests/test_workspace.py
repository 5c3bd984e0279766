from __future__ import annotations

from pathlib import Path

import pytest

from loopml import InvalidInput, NotFound, Workspace


def test_init_creates_layout_and_is_idempotent(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "proj")
    assert (tmp_path / "proj" / ".loopml" / "loopml.toml").exists()
    assert ws.meta.dialect == "sqlite"
    assert ws.artifacts.is_local
    ws.close()
    again = Workspace.init(tmp_path / "proj")
    assert again.settings.metadata_url == ws.settings.metadata_url
    again.close()


def test_open_finds_workspace_upwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path).close()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    with Workspace.open() as ws:
        assert ws.root == tmp_path.resolve()


def test_open_uses_loopml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path / "w").close()
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "w"))
    monkeypatch.chdir(tmp_path)
    with Workspace.open() as ws:
        assert ws.root == (tmp_path / "w").resolve()


def test_open_without_workspace_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound, match="loopml init"):
        Workspace.open()


def test_env_overrides_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path).close()
    monkeypatch.setenv("LOOPML_ARTIFACT_ROOT", "memory://loopml-test-env")
    monkeypatch.setenv("LOOPML_ROW_GROUP_SIZE", "1000")
    with Workspace.open(tmp_path) as ws:
        assert ws.artifacts.url == "memory://loopml-test-env"
        assert not ws.artifacts.is_local
        assert ws.settings.row_group_size == 1000


def test_settings_file_errors_are_clear(tmp_path: Path) -> None:
    Workspace.init(tmp_path).close()
    settings = tmp_path / ".loopml" / "loopml.toml"
    settings.write_text('metadata_urll = "x"\n')
    with pytest.raises(InvalidInput, match="unknown setting 'metadata_urll'"):
        Workspace.open(tmp_path)
    settings.write_text("metadata_url = \n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        Workspace.open(tmp_path)


def test_init_on_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInput, match="is a file"):
        Workspace.init(f)


def test_start_run_convenience_flushes_on_close(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path)
    with ws.start_run(experiment="churn", name="first") as run:
        run.log_metric("auc", 0.5, step=1)
        run.log_metric("auc", 0.75, step=2)
    ws.close()
    with Workspace.open(tmp_path) as again:
        info = again.tracker.get_run(run.id)
        assert info.metrics["auc"] == 0.75 and info.status == "FINISHED"
        assert [p.value for p in again.tracker.metric_history(run.id, "auc")] == [0.5, 0.75]
