"""The wrangler-style config: discovery, formats, env sections, local vars and every error."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest

from wf.config import CONFIG_NAMES, Config, WorkflowConfig, find_config, load_config, parse_config_text
from wf.errors import ConfigError, NotFoundError

WORKFLOW = {"name": "order-processing", "binding": "ORDERS", "class_name": "OrderWorkflow"}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def write_json(folder: Path, data: dict, name: str = "wrangler.json") -> Path:
    return write(folder, name, json.dumps(data, indent=2))


def config_with(tmp_path: Path, **top) -> Config:
    write_json(tmp_path, {"main": "src/index.py", "workflows": [WORKFLOW], **top})
    return load_config(cwd=tmp_path, environ={})


def config_error(tmp_path: Path, data: dict) -> ConfigError:
    write_json(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={})
    return info.value


# ---------------------------------------------------------------- discovery


def test_config_names_are_wranglers_in_order():
    assert CONFIG_NAMES == ("wrangler.jsonc", "wrangler.json", "wrangler.toml")


def test_found_from_a_nested_subdirectory(tmp_path):
    cfg = write_json(tmp_path, {"main": "app.py"})
    deep = tmp_path / "src" / "deep"
    deep.mkdir(parents=True)
    assert find_config(cwd=deep) == cfg.resolve()
    loaded = load_config(cwd=deep, environ={})
    assert loaded.path == cfg.resolve() and loaded.root == tmp_path.resolve()


def test_jsonc_wins_over_json_and_toml_in_the_same_directory(tmp_path):
    write_json(tmp_path, {"main": "a.py"})
    write(tmp_path, "wrangler.toml", 'main = "b.py"\n')
    jsonc = write(tmp_path, "wrangler.jsonc", '{"main": "c.py"}')
    assert find_config(cwd=tmp_path) == jsonc.resolve()
    assert load_config(cwd=tmp_path, environ={}).main == "c.py"


def test_nearest_directory_wins_over_a_parent(tmp_path):
    write(tmp_path, "wrangler.jsonc", '{"main": "outer.py"}')
    inner = write(tmp_path / "pkg", "wrangler.toml", 'main = "inner.py"\n')
    assert find_config(cwd=tmp_path / "pkg") == inner.resolve()


def test_explicit_path_is_relative_to_cwd_and_skips_discovery(tmp_path):
    write_json(tmp_path, {"main": "default.py"})
    other = write_json(tmp_path / "conf", {"main": "other.py"}, name="custom.jsonc")
    loaded = load_config("conf/custom.jsonc", cwd=tmp_path, environ={})
    assert loaded.path == other.resolve() and loaded.main == "other.py"
    assert loaded.root == (tmp_path / "conf").resolve()


def test_explicit_directory_uses_the_config_inside_it(tmp_path):
    cfg = write_json(tmp_path / "proj", {"main": "app.py"})
    assert find_config("proj", cwd=tmp_path) == cfg.resolve()


def test_explicit_path_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(ConfigError) as info:
        find_config("nope/wrangler.jsonc", cwd=tmp_path)
    assert str(tmp_path / "nope" / "wrangler.jsonc") in str(info.value)
    assert "does not exist" in str(info.value)


def test_explicit_directory_without_a_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as info:
        find_config(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value)


def test_no_config_anywhere_says_run_wf_init(tmp_path):
    with pytest.raises(ConfigError) as info:
        find_config(cwd=tmp_path)
    assert str(tmp_path) in str(info.value)
    assert info.value.hint == "run `wf init` or pass -c PATH"


# ---------------------------------------------------------------- formats


def test_jsonc_with_comments_and_trailing_commas(tmp_path):
    write(
        tmp_path,
        "wrangler.jsonc",
        """
        // the project
        {
          "name": "shop", /* inline */
          "main": "src/index.py",
          "compatibility_date": "2026-11-01",
          "compatibility_flags": ["workflows_preserve_non_retryable_error_message",],
          "vars": { "API_BASE": "http://127.0.0.1:9000", "RETRIES": 3, },
          "workflows": [
            {
              "name": "order-processing",   // kebab
              "binding": "ORDERS",
              "class_name": "OrderWorkflow",
              "limits": { "steps": 500 },
              "concurrency": { "limit": 10 },
              "schedules": ["*/5 * * * *", "0 0 * * 1"],
              "script_name": "other-worker",
            },
          ],
          "observability": { "enabled": true },
        }
    """,
    )
    cfg = load_config(cwd=tmp_path, environ={})
    assert (cfg.name, cfg.main, cfg.compatibility_date) == ("shop", "src/index.py", "2026-11-01")
    assert cfg.compatibility_flags == ("workflows_preserve_non_retryable_error_message",)
    assert dict(cfg.vars) == {"API_BASE": "http://127.0.0.1:9000", "RETRIES": 3}
    assert cfg.workflows == (
        WorkflowConfig(
            "order-processing",
            "ORDERS",
            "OrderWorkflow",
            step_limit=500,
            concurrency_limit=10,
            schedules=("*/5 * * * *", "0 0 * * 1"),
            script_name="other-worker",
        ),
    )


def test_plain_json_and_defaults(tmp_path):
    cfg = config_with(tmp_path)
    assert cfg.name is None and cfg.compatibility_date is None and cfg.compatibility_flags == ()
    assert dict(cfg.vars) == {} and cfg.env_name is None
    wf = cfg.workflows[0]
    assert (wf.step_limit, wf.concurrency_limit, wf.schedules, wf.script_name) == (10_000, None, (), None)


def test_toml_with_workflow_tables(tmp_path):
    write(
        tmp_path,
        "wrangler.toml",
        """
        name = "shop"
        main = "shop.app"
        compatibility_date = 2026-11-01

        [vars]
        API_BASE = "http://x"

        [[workflows]]
        name = "nightly"
        binding = "NIGHTLY"
        class_name = "Nightly"
        schedules = "0 3 * * *"

        [workflows.limits]
        steps = 25

        [workflows.concurrency]
        limit = 2
    """,
    )
    cfg = load_config(cwd=tmp_path, environ={})
    assert cfg.main == "shop.app" and cfg.compatibility_date == "2026-11-01"
    assert dict(cfg.vars) == {"API_BASE": "http://x"}
    assert cfg.workflows == (
        WorkflowConfig("nightly", "NIGHTLY", "Nightly", step_limit=25, concurrency_limit=2, schedules=("0 3 * * *",)),
    )


def test_empty_or_missing_workflows_is_allowed(tmp_path):
    assert config_with(tmp_path, workflows=[]).workflows == ()
    write_json(tmp_path, {"main": "app.py"})
    assert load_config(cwd=tmp_path, environ={}).workflows == ()


def test_config_is_frozen_and_vars_read_only(tmp_path):
    cfg = config_with(tmp_path, vars={"A": "1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.main = "other.py"
    with pytest.raises(TypeError):
        cfg.vars["A"] = "2"


def test_workflow_lookup_by_name_and_binding(tmp_path):
    second = {"name": "billing", "binding": "BILLING", "class_name": "Billing"}
    cfg = config_with(tmp_path, workflows=[WORKFLOW, second])
    assert cfg.workflow("billing").class_name == "Billing"
    assert cfg.by_binding("ORDERS").name == "order-processing"


@pytest.mark.parametrize("method, value", [("workflow", "shipping"), ("by_binding", "SHIPPING")])
def test_unknown_workflow_names_the_value_and_lists_declared(tmp_path, method, value):
    cfg = config_with(tmp_path)
    with pytest.raises(NotFoundError) as info:
        getattr(cfg, method)(value)
    assert repr(value) in str(info.value)
    declared = "order-processing" if method == "workflow" else "ORDERS"
    assert declared in info.value.hint


def test_parse_config_text_by_suffix():
    assert parse_config_text('{"a": 1, // c\n}', Path("w.jsonc")) == {"a": 1}
    assert parse_config_text("a = 1\n", Path("w.toml")) == {"a": 1}


# ---------------------------------------------------------------- syntax errors


def test_jsonc_syntax_error_has_file_line_and_column(tmp_path):
    path = write(tmp_path, "wrangler.jsonc", '{\n  "main": "a.py"\n  "name": "x"\n}\n')
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={})
    err = info.value
    assert (err.path, err.line, err.column) == (str(path), 3, 3)
    assert str(err).startswith(f"{path}:3:3: Syntax error")


def test_toml_syntax_error_has_file_line_and_column(tmp_path):
    path = write(tmp_path, "wrangler.toml", 'main = "a.py"\nname = \n')
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={})
    assert (info.value.line, info.value.column) == (2, 8)
    assert str(info.value).startswith(f"{path}:2:8: Syntax error")


def test_empty_file_and_non_object_top_level(tmp_path):
    path = write(tmp_path, "wrangler.json", "  \n")
    with pytest.raises(ConfigError, match="empty") as info:
        load_config(cwd=tmp_path, environ={})
    assert str(path) in str(info.value)
    write(tmp_path, "wrangler.json", "[1, 2]")
    with pytest.raises(ConfigError, match=r"found \[1, 2\] \(a list\)"):
        load_config(cwd=tmp_path, environ={})


# ---------------------------------------------------------------- validation errors

BAD = [
    ({"workflows": []}, "main", "nothing"),
    ({"main": 7}, "main", "7 (a number)"),
    ({"main": "src/index.ts"}, "main", '"src/index.ts"'),
    ({"main": "a.py", "name": ["x"]}, "name", '["x"] (a list)'),
    ({"main": "a.py", "compatibility_flags": "nodejs_compat"}, "compatibility_flags", '"nodejs_compat"'),
    ({"main": "a.py", "vars": ["A"]}, "vars", '["A"] (a list)'),
    ({"main": "a.py", "workflows": {"name": "x"}}, "workflows", '{"name": "x"} (an object)'),
    ({"main": "a.py", "workflows": ["x"]}, "workflows[0]", '"x" (a string)'),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "name": None}]}, "workflows[0].name", "null"),
    ({"main": "a.py", "workflows": [{"binding": "A", "class_name": "C"}]}, "workflows[0].name", "nothing"),
    ({"main": "a.py", "workflows": [{"name": "a", "class_name": "C"}]}, "workflows[0].binding", "nothing"),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "binding": "MY-BINDING"}]}, "workflows[0].binding", '"MY-BINDING"'),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "class_name": 3}]}, "workflows[0].class_name", "3 (a number)"),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "limits": {"steps": 0}}]}, "workflows[0].limits.steps", "0"),
    (
        {"main": "a.py", "workflows": [{**WORKFLOW, "limits": {"steps": "10"}}]},
        "workflows[0].limits.steps",
        '"10" (a string)',
    ),
    (
        {"main": "a.py", "workflows": [{**WORKFLOW, "limits": {"steps": True}}]},
        "workflows[0].limits.steps",
        "true (a boolean)",
    ),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "limits": 5}]}, "workflows[0].limits", "5 (a number)"),
    (
        {"main": "a.py", "workflows": [{**WORKFLOW, "concurrency": {"limit": -1}}]},
        "workflows[0].concurrency.limit",
        "-1",
    ),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "schedules": []}]}, "workflows[0].schedules", "[] (a list)"),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "schedules": ""}]}, "workflows[0].schedules", '""'),
    (
        {"main": "a.py", "workflows": [{**WORKFLOW, "schedules": ["0 * * * *", "* * *"]}]},
        "workflows[0].schedules[1]",
        '"* * *"',
    ),
    ({"main": "a.py", "workflows": [{**WORKFLOW, "script_name": 1}]}, "workflows[0].script_name", "1"),
]


@pytest.mark.parametrize("data, field, found", BAD, ids=[f"{b[1]}={b[2]}" for b in BAD])
def test_validation_error_names_file_field_and_found_value(tmp_path, data, field, found):
    err = config_error(tmp_path, data)
    assert err.field == field
    assert str(err).startswith(str(tmp_path / "wrangler.json"))
    assert f"{field} must be" in str(err)
    assert f"found {found}" in str(err)
    assert err.hint


def test_bad_workflow_name_uses_wranglers_wording_and_points_at_it(tmp_path):
    write(
        tmp_path,
        "wrangler.jsonc",
        """
        {
          "main": "a.py",
          "workflows": [
            {"name": "ok", "binding": "OK", "class_name": "Ok"},
            {"name": "bad name!", "binding": "BAD", "class_name": "Bad"}
          ]
        }
    """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={})
    err = info.value
    assert err.field == "workflows[1].name" and (err.line, err.column) == (5, 14)
    assert '"bad name!"' in str(err)
    assert (
        "Workflow names must be 1-64 characters long, start with a letter, number, or underscore, "
        "and may only contain letters, numbers, underscores, or hyphens."
    ) in str(err)


def test_workflow_name_longer_than_64_is_rejected(tmp_path):
    assert config_with(tmp_path, workflows=[{**WORKFLOW, "name": "a" * 64}]).workflows[0].name == "a" * 64
    err = config_error(tmp_path, {"main": "a.py", "workflows": [{**WORKFLOW, "name": "a" * 65}]})
    assert err.field == "workflows[0].name" and "1-64 characters" in str(err)


@pytest.mark.parametrize("attr", ["name", "binding"])
def test_duplicate_workflow_name_or_binding_points_at_the_second(tmp_path, attr):
    first = {"name": "a", "binding": "A", "class_name": "A"}
    second = {"name": "b", "binding": "B", "class_name": "B", attr: first[attr]}
    write(tmp_path, "wrangler.json", json.dumps({"main": "a.py", "workflows": [first, second]}, indent=1))
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={})
    err = info.value
    assert err.field == f"workflows[1].{attr}"
    assert "unique" in str(err) and "workflows[0]" in str(err) and f'"{first[attr]}"' in str(err)
    assert err.line == 10 + (attr == "binding")


def test_validation_error_in_toml_has_line_and_column(tmp_path):
    write(
        tmp_path,
        "wrangler.toml",
        """
        main = "a.py"

        [[workflows]]
        name = "a"
        binding = "A"
        class_name = "A"
        limits = { steps = -5 }
    """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, environ={})
    assert info.value.field == "workflows[0].limits.steps"
    assert (info.value.line, info.value.column) == (7, 20)


def test_unknown_top_level_and_workflow_keys_are_ignored(tmp_path):
    cfg = config_with(tmp_path, kv_namespaces=[{"binding": "KV"}], workflows=[{**WORKFLOW, "extra": 1}])
    assert cfg.workflows[0].name == "order-processing"


# ---------------------------------------------------------------- env sections

ENVS = {
    "name": "shop",
    "main": "src/index.py",
    "compatibility_date": "2026-01-01",
    "vars": {"MODE": "prod", "ONLY_TOP": "1"},
    "workflows": [WORKFLOW],
    "env": {
        "staging": {
            "vars": {"MODE": "staging"},
            "workflows": [{"name": "stage-orders", "binding": "ORDERS", "class_name": "StageOrders"}],
        },
        "bare": {"compatibility_date": "2027-01-01"},
        "moved": {"main": "other.app", "name": "shop-moved"},
    },
}


def test_env_section_replaces_vars_and_workflows_and_inherits_the_rest(tmp_path):
    write_json(tmp_path, ENVS)
    cfg = load_config(cwd=tmp_path, env="staging", environ={})
    assert cfg.env_name == "staging"
    assert dict(cfg.vars) == {"MODE": "staging"}
    assert [wf.name for wf in cfg.workflows] == ["stage-orders"]
    assert (cfg.name, cfg.main, cfg.compatibility_date) == ("shop", "src/index.py", "2026-01-01")


def test_env_section_without_vars_or_workflows_has_none(tmp_path):
    write_json(tmp_path, ENVS)
    cfg = load_config(cwd=tmp_path, env="bare", environ={})
    assert dict(cfg.vars) == {} and cfg.workflows == ()
    assert cfg.compatibility_date == "2027-01-01" and cfg.main == "src/index.py"


def test_env_section_overrides_name_and_main(tmp_path):
    write_json(tmp_path, ENVS)
    cfg = load_config(cwd=tmp_path, env="moved", environ={})
    assert (cfg.name, cfg.main) == ("shop-moved", "other.app")


def test_no_env_selected_uses_top_level(tmp_path):
    write_json(tmp_path, ENVS)
    cfg = load_config(cwd=tmp_path, environ={})
    assert dict(cfg.vars) == {"MODE": "prod", "ONLY_TOP": "1"} and cfg.workflows[0].name == "order-processing"


def test_unknown_env_lists_the_known_ones(tmp_path):
    write_json(tmp_path, ENVS)
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, env="prod", environ={})
    assert "'prod'" in str(info.value) and str(tmp_path / "wrangler.json") in str(info.value)
    assert info.value.hint == "declared environments: staging, bare, moved"


def test_env_requested_but_none_declared(tmp_path):
    write_json(tmp_path, {"main": "a.py"})
    with pytest.raises(ConfigError, match="'staging'") as info:
        load_config(cwd=tmp_path, env="staging", environ={})
    assert "no `env` sections" in info.value.hint


def test_error_inside_an_env_section_names_its_path(tmp_path):
    data = {"main": "a.py", "env": {"staging": {"workflows": [{**WORKFLOW, "binding": "1X"}]}}}
    write_json(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, env="staging", environ={})
    assert info.value.field == "env.staging.workflows[0].binding"
    assert 'found "1X"' in str(info.value)


# ---------------------------------------------------------------- .dev.vars / .env


def test_dev_vars_override_config_vars(tmp_path):
    write(
        tmp_path,
        ".dev.vars",
        """
        # secrets
        export API_KEY="s3cr3t"
        MODE = local   # trailing comment
        QUOTED='single # not a comment'
        ESCAPED="line1\\nline2"
        URL=http://x/#frag
        EMPTY=
        MULTI="first
        second"
    """,
    )
    cfg = config_with(tmp_path, vars={"MODE": "prod", "KEEP": "yes"})
    assert dict(cfg.vars) == {
        "MODE": "local",
        "KEEP": "yes",
        "API_KEY": "s3cr3t",
        "QUOTED": "single # not a comment",
        "ESCAPED": "line1\nline2",
        "URL": "http://x/#frag",
        "EMPTY": "",
        "MULTI": "first\nsecond",
    }


def test_env_file_is_read_only_when_there_is_no_dev_vars(tmp_path):
    write(tmp_path, ".env", "FROM_ENV=1\n")
    assert dict(config_with(tmp_path).vars) == {"FROM_ENV": "1"}
    write(tmp_path, ".dev.vars", "FROM_DEV=1\n")
    assert dict(config_with(tmp_path).vars) == {"FROM_DEV": "1"}


def test_env_specific_dev_vars_win(tmp_path):
    data = {"main": "a.py", "env": {"staging": {"vars": {"A": "config"}}}}
    write_json(tmp_path, data)
    write(tmp_path, ".dev.vars", "A=dev\nB=dev\n")
    write(tmp_path, ".dev.vars.staging", "A=staging\n")
    assert dict(load_config(cwd=tmp_path, env="staging", environ={}).vars) == {"A": "staging"}
    (tmp_path / ".dev.vars.staging").unlink()
    assert dict(load_config(cwd=tmp_path, env="staging", environ={}).vars) == {"A": "dev", "B": "dev"}


def test_env_and_env_specific_dotenv_are_layered(tmp_path):
    write_json(tmp_path, {"main": "a.py", "env": {"staging": {}}})
    write(tmp_path, ".env", "A=base\nB=base\n")
    write(tmp_path, ".env.staging", "B=staging\n")
    assert dict(load_config(cwd=tmp_path, env="staging", environ={}).vars) == {"A": "base", "B": "staging"}
    assert dict(load_config(cwd=tmp_path, environ={}).vars) == {"A": "base", "B": "base"}


def test_malformed_dev_vars_line_names_file_and_line(tmp_path):
    path = write(tmp_path, ".dev.vars", "A=1\nthis is not an assignment\n")
    with pytest.raises(ConfigError) as info:
        config_with(tmp_path)
    assert str(info.value).startswith(f"{path}:2:")
    assert "'this is not an assignment'" in str(info.value)


def test_unclosed_quote_in_dev_vars(tmp_path):
    path = write(tmp_path, ".dev.vars", 'A="open\nB=2\n')
    with pytest.raises(ConfigError, match="Unclosed") as info:
        config_with(tmp_path)
    assert info.value.path == str(path) and info.value.line == 1


# ---------------------------------------------------------------- state dir and store


def test_state_dir_defaults_beside_the_config(tmp_path):
    write_json(tmp_path, {"main": "a.py"})
    (tmp_path / "sub").mkdir()
    assert load_config(cwd=tmp_path / "sub", environ={}).state_dir == tmp_path.resolve() / ".wf"


def test_persist_to_is_relative_to_cwd(tmp_path):
    write_json(tmp_path, {"main": "a.py"})
    (tmp_path / "sub").mkdir()
    cfg = load_config(cwd=tmp_path / "sub", persist_to="state", environ={})
    assert cfg.state_dir == (tmp_path / "sub" / "state").resolve()
    assert load_config(cwd=tmp_path, persist_to=tmp_path / "abs", environ={}).state_dir == tmp_path / "abs"


def test_store_argument_beats_wf_store_environ(tmp_path):
    write_json(tmp_path, {"main": "a.py"})
    environ = {"WF_STORE": "postgresql://env/db"}
    assert load_config(cwd=tmp_path, environ=environ).store_url == "postgresql://env/db"
    assert load_config(cwd=tmp_path, store="sqlite:///x.db", environ=environ).store_url == "sqlite:///x.db"
    assert load_config(cwd=tmp_path, environ={}).store_url is None


def test_store_defaults_to_process_environment(tmp_path, monkeypatch):
    write_json(tmp_path, {"main": "a.py"})
    monkeypatch.setenv("WF_STORE", "postgresql://from-os/db")
    assert load_config(cwd=tmp_path).store_url == "postgresql://from-os/db"


def test_inherited_field_error_names_the_top_level_field(tmp_path):
    write_json(tmp_path, {"main": "src/index.ts", "env": {"staging": {"vars": {}}}})
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, env="staging", environ={})
    assert info.value.field == "main" and 'found "src/index.ts"' in str(info.value)


def test_duplicate_inside_an_env_section_names_the_section(tmp_path):
    data = {"main": "a.py", "env": {"staging": {"workflows": [WORKFLOW, {**WORKFLOW, "binding": "OTHER"}]}}}
    write_json(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(cwd=tmp_path, env="staging", environ={})
    assert info.value.field == "env.staging.workflows[1].name"
    assert "(env.staging.workflows[0] has it already)" in str(info.value)
