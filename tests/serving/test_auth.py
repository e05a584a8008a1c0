"""API keys: hashed at rest, constant-time checks, 401 vs 403, never logged; the audit helper."""

from __future__ import annotations

import json
import logging
import stat

import pytest

from serving import auth
from serving.auth import (
    AuthError,
    KeyRing,
    Principal,
    authorize,
    create_keys_file,
    hash_key,
    key_from_headers,
)


@pytest.fixture
def keys(tmp_path):
    path = tmp_path / "api_keys.json"
    clear = create_keys_file(path)
    return path, clear


def test_keys_file_stores_only_hashes_and_is_private(keys):
    path, clear = keys
    text = path.read_text()
    assert set(clear) == {"demo-timebank", "demo-care-manager", "demo-admin", "demo-volunteer"}
    assert KeyRing.from_file(path).authenticate(clear["demo-volunteer"]).volunteer_id == "V0001"
    assert KeyRing.from_file(path).authenticate(clear["demo-timebank"]).volunteer_id is None
    for key in clear.values():
        assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError, match="already exists"):
        create_keys_file(path)
    assert len(set(clear.values())) == 4


def test_roles_401_and_403(keys):
    path, clear = keys
    ring = KeyRing.from_file(path)
    assert authorize(ring, clear["demo-timebank"], ["timebank"]) == Principal("demo-timebank", "timebank")
    assert authorize(ring, clear["demo-admin"], ["timebank"]).role == "admin"  # admin may do anything
    with pytest.raises(AuthError) as e:
        authorize(ring, clear["demo-care-manager"], ["timebank"])
    assert e.value.status == 403 and "care_manager" in e.value.message
    for bad in (None, "", "tc_not-a-key", clear["demo-timebank"] + "x"):
        with pytest.raises(AuthError) as e:
            authorize(ring, bad, ["timebank"])
        assert e.value.status == 401
    with pytest.raises(ValueError, match="unknown roles"):
        authorize(ring, clear["demo-admin"], ["superuser"])


def test_errors_and_reprs_never_contain_a_key(keys, caplog):
    path, clear = keys
    ring = KeyRing.from_file(path)
    caplog.set_level(logging.DEBUG)
    texts = [repr(ring), repr(authorize(ring, clear["demo-admin"], ["admin"]))]
    for presented in (clear["demo-care-manager"], "tc_wrong"):
        try:
            authorize(ring, presented, ["timebank"])
        except AuthError as e:
            texts.append(str(e))
    joined = "\n".join(texts + [caplog.text])
    assert all(k not in joined for k in clear.values()) and "tc_wrong" not in joined


def test_comparison_is_constant_time(monkeypatch, keys):
    path, clear = keys
    ring = KeyRing.from_file(path)
    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    ring.authenticate(clear["demo-timebank"])  # the first entry: still checks them all
    assert len(calls) == len(ring) == 4


def test_bad_keys_file_says_what_is_wrong(tmp_path):
    p = tmp_path / "k.json"
    with pytest.raises(FileNotFoundError, match="create-keys"):
        KeyRing.from_file(p)
    p.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        KeyRing.from_file(p)
    p.write_text(json.dumps({"keys": [{"name": "x", "role": "root", "sha256": "0" * 64}]}))
    with pytest.raises(ValueError, match="role 'root'"):
        KeyRing.from_file(p)
    p.write_text(json.dumps({"keys": [{"name": "x", "role": "admin", "sha256": "abc"}]}))
    with pytest.raises(ValueError, match="64 hex"):
        KeyRing.from_file(p)


def test_key_from_headers():
    assert key_from_headers({"Authorization": "Bearer abc"}) == "abc"
    assert key_from_headers({"x-api-key": " k2 "}) == "k2"
    assert key_from_headers({"authorization": "Basic Zm9v"}) is None
    assert key_from_headers({}) is None


def test_cli_prints_keys_once_and_refuses_to_overwrite(tmp_path, capsys):
    p = tmp_path / "keys.json"
    assert auth.main(["create-keys", str(p)]) == 0
    out = capsys.readouterr().out
    ring = KeyRing.from_file(p)
    printed = [line.split()[-1] for line in out.splitlines() if line.startswith("  ")]
    assert len(printed) == 4 and all(ring.authenticate(k) is not None for k in printed)
    assert auth.main(["create-keys", str(p)]) == 1
    assert auth.main(["bogus"]) == 2


def test_audit_helper_records_who_read_whose_data(sqlite_store):
    p = Principal("desk-1", "care_manager")
    auth.audit(sqlite_store, p, "resident.read", resident_id="R0042", detail={"route": "/residents/R0042"})
    (row,) = sqlite_store.audit_log(resident_id="R0042")
    assert (row.actor, row.role, row.action, row.detail["route"]) == (
        "desk-1", "care_manager", "resident.read", "/residents/R0042",
    )
