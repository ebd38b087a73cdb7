"""`flask numbering update|status` and plan_for_app(): the Flask side of the registry."""
from __future__ import annotations

import logging
import os
import threading

import pytest
from flask import Flask

from olchat_widget.phones import NumberingPlan, plan_for_app, reset_plan, update_registry
from olchat_widget.phones import numbering
from olchat_widget.phones.cli import numbering_cli


@pytest.fixture
def app(tmp_path):
    app = Flask("phones_cli_test")
    app.config.update(
        OLCHAT_NUMBERING_PATH=str(tmp_path / "instance" / "DEF-9xx.csv"),
        OLCHAT_NUMBERING_URL=str(tmp_path / "published.csv"),
    )
    app.cli.add_command(numbering_cli)
    resets = []
    app.extensions["olchat_numbering_reset"] = lambda: resets.append(True)
    app.resets = resets
    return app


def _run(app, *args):
    """Invoke `flask numbering ...`; result.output holds stdout and stderr (click >= 8.2)."""
    return app.test_cli_runner().invoke(args=["numbering", *args])


def test_update_from_the_configured_url(app, tmp_path, make_csv):
    (tmp_path / "published.csv").write_bytes(make_csv(1200))
    result = _run(app, "update")
    assert result.exit_code == 0, result.output
    assert "Loaded 1200 ranges" in result.output
    assert os.path.exists(app.config["OLCHAT_NUMBERING_PATH"])
    assert app.resets == [True]  # the running app is told to reload


def test_update_from_an_explicit_source(app, tmp_path, make_csv):
    source = tmp_path / "other.csv"
    source.write_bytes(make_csv(1300))
    result = _run(app, "update", str(source))
    assert result.exit_code == 0, result.output
    assert "1300 ranges" in result.output


def test_failed_update_says_why_and_exits_1(app, tmp_path, make_csv):
    target = app.config["OLCHAT_NUMBERING_PATH"]
    os.makedirs(os.path.dirname(target))
    with open(target, "wb") as f:
        f.write(make_csv(1100))
    before = open(target, "rb").read()
    (tmp_path / "published.csv").write_bytes(b"<html>oops</html>")
    result = _run(app, "update")
    assert result.exit_code == 1
    assert "Update failed" in result.output
    assert "header" in result.output
    assert "left unchanged" in result.output
    assert open(target, "rb").read() == before
    assert app.resets == []


def test_update_without_a_configured_path(app):
    app.config["OLCHAT_NUMBERING_PATH"] = ""
    result = _run(app, "update", "whatever.csv")
    assert result.exit_code == 1
    assert "OLCHAT_NUMBERING_PATH is not set" in result.output


def test_status(app, tmp_path, make_csv):
    result = _run(app, "status")
    assert result.exit_code == 0
    assert "No registry loaded" in result.output
    (tmp_path / "published.csv").write_bytes(make_csv(1200))
    assert _run(app, "update").exit_code == 0
    result = _run(app, "status")
    assert result.exit_code == 0, result.output
    assert "Ranges: 1200 in 1 codes" in result.output


def test_status_of_a_broken_file(app):
    target = app.config["OLCHAT_NUMBERING_PATH"]
    os.makedirs(os.path.dirname(target))
    with open(target, "w") as f:
        f.write("garbage")
    result = _run(app, "status")
    assert result.exit_code == 1
    assert "unusable" in result.output


# -- plan_for_app ----------------------------------------------------------------------


def test_no_registry_means_none_and_one_warning(app, caplog):
    caplog.set_level(logging.WARNING)
    assert plan_for_app(app) is None
    reset_plan(app)
    assert plan_for_app(app) is None
    warnings = [r for r in caplog.records if "No numbering plan registry" in r.getMessage()]
    assert len(warnings) == 1


def test_plan_is_loaded_once_and_cached(app, make_csv):
    target = app.config["OLCHAT_NUMBERING_PATH"]
    os.makedirs(os.path.dirname(target))
    with open(target, "wb") as f:
        f.write(make_csv(1200))
    plan = plan_for_app(app)
    assert isinstance(plan, NumberingPlan) and plan.rows == 1200
    assert plan_for_app(app) is plan
    assert app.extensions["olchat_numbering"] is plan


def test_concurrent_first_calls_load_once(app, make_csv, monkeypatch):
    target = app.config["OLCHAT_NUMBERING_PATH"]
    os.makedirs(os.path.dirname(target))
    with open(target, "wb") as f:
        f.write(make_csv(1200))
    loads = []
    real_load = NumberingPlan.load.__func__
    monkeypatch.setattr(NumberingPlan, "load", classmethod(lambda cls, p: loads.append(p) or real_load(cls, p)))
    results = []
    threads = [threading.Thread(target=lambda: results.append(plan_for_app(app))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert len({id(r) for r in results}) == 1


def test_reset_hook_style_pop_reloads(app, tmp_path, make_csv):
    """The app owner's reset hook may simply drop app.extensions['olchat_numbering']."""
    assert plan_for_app(app) is None
    (tmp_path / "published.csv").write_bytes(make_csv(1200))
    assert _run(app, "update").exit_code == 0
    app.extensions.pop("olchat_numbering")
    assert plan_for_app(app).rows == 1200


def test_a_file_replaced_by_another_process_is_noticed(app, tmp_path, make_csv, monkeypatch):
    monkeypatch.setattr(numbering, "RECHECK_SECONDS", 0.0)
    target = app.config["OLCHAT_NUMBERING_PATH"]
    os.makedirs(os.path.dirname(target))
    with open(target, "wb") as f:
        f.write(make_csv(1100))
    assert plan_for_app(app).rows == 1100
    source = tmp_path / "new.csv"
    source.write_bytes(make_csv(1200))
    update_registry(str(source), target)  # as `flask numbering update` in another process would
    assert plan_for_app(app).rows == 1200


def test_a_broken_active_file_means_libphonenumber_alone(app, caplog):
    target = app.config["OLCHAT_NUMBERING_PATH"]
    os.makedirs(os.path.dirname(target))
    with open(target, "w") as f:
        f.write("garbage")
    caplog.set_level(logging.ERROR)
    assert plan_for_app(app) is None
    assert any("unusable" in r.getMessage() for r in caplog.records)
