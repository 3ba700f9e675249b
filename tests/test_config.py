import subprocess
import sys
import textwrap

import pytest

from botwatch.config.estate import ConfigError, load_estate, parse_estate_text

GOOD = textwrap.dedent("""\
    agent:
      listen: 127.0.0.1:9464
      journal: ./j.db
      ping_key: env:BOTWATCH_PING_KEY
    failure_patterns:
      - {reason: business, contains: "Invoice already booked"}
    bots:
      - name: invoice-recon
        owner: ana.diaz@example.com
        team: finance
        platform: uipath
        lifecycle: production
        criticality: high
        schedule: "0 7 * * 1-5"
        timezone: Europe/Amsterdam
        grace: 15m
        max_runtime: 30m
        runbook: https://wiki.example.com/bots/invoice-recon
      - name: mailbox-sweeper
        every: 15m
      - name: minimal
    """)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_estate_text(text, "e.yaml")
    return exc.value.problems


def test_a_complete_estate_file_is_valid():
    estate = parse_estate_text(GOOD)
    bot = estate.bot("invoice-recon")
    assert bot.grace == 900 and bot.max_runtime == 1800 and bot.timezone == "Europe/Amsterdam"
    assert estate.bot("mailbox-sweeper").every == 900
    assert estate.bot("minimal").owner is None  # only the name is required


def test_a_bot_without_a_platform_takes_the_one_whose_processes_rules_name_it():
    rule = "processes: [{process: 'Invoice.*', bot: %s}]"
    estate = parse_estate_text(textwrap.dedent(f"""\
        platforms:
          uipath:
            - {{name: orch, url: 'https://cloud.uipath.com', organization: o, tenant: t, client_id: c,
               client_secret: s, {rule % "invoices"}}}
          robocorp:
            - {{name: rc, url: 'https://cloud.robocorp.com/api/v1', workspace_id: w, api_key: k,
               {rule % "both"}}}
            - {{name: rc2, url: 'https://cloud.robocorp.com/api/v1', workspace_id: w2, api_key: k,
               {rule % "told"}}}
          blueprism:
            - {{name: bp, url: 'https://bp.example.com/api/v7', auth_url: 'https://bp-auth.example.com',
               client_id: c, client_secret: s, {rule % "both"}}}
        bots:
          - {{name: invoices, team: ap}}
          - {{name: both}}
          - {{name: told, platform: python}}
          - {{name: elsewhere}}
        """))
    assert estate.bot("invoices").platform == "uipath" and estate.bot("invoices").team == "ap"
    assert estate.bot("both").platform == "other"  # two platforms name it: the file must say
    assert estate.bot("told").platform == "python"  # what the file says wins
    assert estate.bot("elsewhere").platform == "other"


def test_the_ping_key_is_never_shown_in_the_parsed_model():
    estate = parse_estate_text(GOOD.replace("env:BOTWATCH_PING_KEY", "s3cret-key"))
    assert "s3cret-key" not in repr(estate)
    assert "s3cret-key" not in str(estate.model_dump())


def test_unknown_keys_are_errors_with_their_line():
    text = GOOD.replace("    team: finance\n", "    team: finance\n    colour: red\n")
    assert problems(text) == ["e.yaml:11: bots[0].colour: unknown key 'colour'"]


def test_bad_duration_cron_and_timezone_are_each_reported_on_their_line():
    text = textwrap.dedent("""\
        bots:
          - name: a
            schedule: "0 25 * * *"
            timezone: Mars/Olympus
            grace: 15x
        """)
    found = problems(text)
    assert found[0].startswith("e.yaml:3: bots[0].schedule: invalid cron expression")
    assert found[1].startswith("e.yaml:4: bots[0].timezone: unknown timezone 'Mars/Olympus'")
    assert found[2].startswith("e.yaml:5: bots[0].grace: invalid duration '15x'")


def test_duplicate_bot_names_are_errors_even_when_other_fields_are_bad():
    text = "bots:\n  - name: a\n    grace: nope\n  - name: a\n"
    found = problems(text)
    assert "e.yaml:4: bots[1].name: duplicate bot name 'a' (first at line 2)" in found
    assert any(p.startswith("e.yaml:3: bots[0].grace") for p in found)


def test_duplicate_yaml_keys_are_errors():
    assert problems("bots:\n  - name: a\n    team: x\n    team: y\n") == [
        "e.yaml:4: bots[0].team: duplicate key (first at line 3)"]


def test_schedule_and_every_together_are_refused():
    assert "set either 'schedule' (cron) or 'every' (interval), not both" in problems(
        "bots:\n  - name: a\n    schedule: '* * * * *'\n    every: 5m\n")[0]


@pytest.mark.parametrize("text,expected", [
    ("bots:\n  - name: Bad Name\n", "e.yaml:2: bots[0].name: bot name 'Bad Name' must match"),
    ("bots:\n  - owner: x\n", "e.yaml:2: bots[0].name: missing required key 'name'"),
    ("bots:\n  - name: a\n    platform: cobol\n", "e.yaml:3: bots[0].platform:"),
    ("agent:\n  listen: nowhere\n", "e.yaml:2: agent.listen: listen address 'nowhere' must be HOST:PORT"),
    ("bots: [\n", "e.yaml:2: YAML syntax error"),
    ("- a\n- b\n", "e.yaml:1: the estate file must be a mapping"),
    ("failure_patterns:\n  - {reason: data}\n", "e.yaml:2: failure_patterns[0]: a failure pattern needs exactly one"),
    ("failure_patterns:\n  - {reason: data, regex: '(['}\n", "e.yaml:2: failure_patterns[0]: invalid regex"),
])
def test_each_problem_names_its_file_and_line(text, expected):
    assert any(p.startswith(expected) for p in problems(text)), problems(text)


def test_relative_journal_paths_resolve_against_the_estate_file(tmp_path):
    (tmp_path / "botwatch.yaml").write_text(GOOD)
    assert load_estate(tmp_path / "botwatch.yaml").journal_path == tmp_path / "j.db"


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "botwatch", *args], capture_output=True, text=True, cwd=cwd)


def test_check_config_exits_0_on_a_valid_file(tmp_path):
    f = tmp_path / "botwatch.yaml"
    f.write_text(GOOD)
    r = run_cli("check-config", str(f))
    assert r.returncode == 0, r.stderr
    assert "OK (3 bot(s))" in r.stdout


def test_check_config_prints_every_problem_and_exits_2(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("agent:\n  listn: x\nbots:\n  - name: a\n    grace: 1y\n  - name: a\n")
    r = run_cli("check-config", str(f))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        f"{f}:2: agent.listn: unknown key 'listn'",
        f"{f}:5: bots[0].grace: invalid duration '1y' (use e.g. 90s, 15m, 2h, 1h30m)",
        f"{f}:6: bots[1].name: duplicate bot name 'a' (first at line 4)",
    ]


def test_check_config_reads_botwatch_config_from_the_environment(tmp_path):
    f = tmp_path / "estate.yaml"
    f.write_text("bots:\n  - name: a\n")
    r = subprocess.run([sys.executable, "-m", "botwatch", "check-config"], capture_output=True, text=True,
                       env={**__import__("os").environ, "BOTWATCH_CONFIG": str(f)})
    assert r.returncode == 0 and str(f) in r.stdout


def test_the_agent_refuses_to_start_on_an_invalid_file_with_the_same_messages(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("bots:\n  - name: a\n    every: never\n")
    r = run_cli("agent", "--config", str(f))
    assert r.returncode == 2
    assert r.stderr.strip() == f"{f}:3: bots[0].every: invalid duration 'never' (use e.g. 90s, 15m, 2h, 1h30m)"


def test_a_missing_estate_file_is_reported_not_a_traceback(tmp_path):
    r = run_cli("check-config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "estate file not found" in r.stderr and "Traceback" not in r.stderr


def test_lines_are_counted_as_editors_count_them_whatever_yaml_breaks_lines_at():
    # YAML also breaks lines at \x85, U+2028 and U+2029 inside a value: FILE:LINE stays the file's line
    for odd in ("\x85", "\u2028", "\u2029"):
        text = f'bots:\n- name: a\n  criticality: "{odd}  "\n  ui: 3\n'
        with pytest.raises(ConfigError) as err:
            parse_estate_text(text, "e.yaml")
        assert [p.split(":")[1] for p in err.value.problems] == ["3", "4"], err.value.problems
