"""The production-settings refusal and the deploy checks, run in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    ignored = {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in ignored}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_production_refuses_to_start_without_secret_key_and_allowed_hosts(tmp_path):
    result = run_manage("check", DEBUG="false", EVERHASH_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DEBUG is off but SECRET_KEY and ALLOWED_HOSTS are not set" in result.stderr


def test_production_names_the_one_missing_variable(tmp_path):
    result = run_manage("check", DEBUG="false", SECRET_KEY="x" * 60, EVERHASH_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is not set" in result.stderr


def test_a_malformed_boolean_stops_the_process_with_its_name(tmp_path):
    result = run_manage("check", DEBUG="maybe", EVERHASH_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DEBUG must be true or false, not 'maybe'" in result.stderr


def test_mastodon_tokens_come_from_a_file_and_a_malformed_pair_is_named_but_not_shown(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("Mastodon.Example=abc123\nphotos.example=def456\n")
    show = "from django.conf import settings as s; print(sorted(s.EVERHASH_MASTODON_TOKENS.items()))"
    good = run_manage("shell", "-c", show, EVERHASH_VAR_DIR=str(tmp_path), EVERHASH_MASTODON_TOKENS_FILE=str(tokens))
    bad = run_manage("check", EVERHASH_VAR_DIR=str(tmp_path), EVERHASH_MASTODON_TOKENS="mastodon.example:abc123")

    assert good.stdout.strip().endswith("[('mastodon.example', 'abc123'), ('photos.example', 'def456')]")
    assert bad.returncode != 0
    assert "EVERHASH_MASTODON_TOKENS: item 1 is not of the form host=token" in bad.stderr
    assert "abc123" not in bad.stderr


def test_an_instance_that_is_not_https_stops_the_process(tmp_path):
    result = run_manage("check", EVERHASH_VAR_DIR=str(tmp_path), EVERHASH_MASTODON_INSTANCES="mastodon.social")
    assert result.returncode != 0
    assert "EVERHASH_MASTODON_INSTANCES: 'mastodon.social' is not an https:// address" in result.stderr


def test_malformed_trusted_proxies_and_the_old_num_proxies_stop_the_process(tmp_path):
    result = run_manage("check", EVERHASH_TRUSTED_PROXIES="127.0.0.1,nginx", EVERHASH_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "EVERHASH_TRUSTED_PROXIES: 'nginx' is not an IP address" in result.stderr
    result = run_manage("check", EVERHASH_NUM_PROXIES="1", EVERHASH_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "EVERHASH_NUM_PROXIES is gone" in result.stderr


def test_check_deploy_is_clean_for_a_configured_production(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY="k" * 64 + "-production-secret-for-the-test",
        ALLOWED_HOSTS="everhash.example.com",
        EVERHASH_SITE_URL="https://everhash.example.com",
        EVERHASH_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_about_the_private_address_exception(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        DEBUG="false",
        SECRET_KEY="k" * 64 + "-production-secret-for-the-test",
        ALLOWED_HOSTS="everhash.example.com",
        EVERHASH_SITE_URL="https://everhash.example.com",
        EVERHASH_ALLOW_PRIVATE_ADDRESSES="127.0.0.1",
        EVERHASH_VAR_DIR=str(tmp_path),
    )
    assert "everhash.W001" in result.stderr + result.stdout
