"""The Bittensor SDK's side of the interop tests (tests/net_sdk.rs).

Each command uses the real `bittensor` package (pinned in requirements.txt)
and talks JSON on stdin/stdout, so the Rust tests decide what to check:

  payload             stdin: [{scheme, method, path, body_hex, nonce, sender, receiver}]
                      stdout: [hex of http_auth.build_payload(...)]
  derive              stdin: [{phrase, crypto}]   stdout: [ss58 of Keypair.create_from_mnemonic]
  new-wallet PATH NAME HOTKEY
                      creates a coldkey (encrypted with $COLD_PW) and a hotkey
                      (encrypted with $HOT_PW when set; $HOT_CRYPTO sr25519 or ed25519);
                      stdout: {coldkey, hotkey}
  load-wallet PATH NAME HOTKEY
                      stdout: {hotkey, coldkeypub, hotkeypub, coldkey (decrypted with $COLD_PW)}
  send URL RECEIVER PATH NAME HOTKEY
                      stdin: [{method, path, body_hex, nonce_offset_s?, tamper?, resend?}]
                      signs each request with http_auth.sign and the wallet's hotkey and
                      sends it with urllib; stdout: [{status, body}]
  verify RECEIVER     stdin: [{method, path, body_hex, headers}]
                      stdout: [{ok, caller} or {ok: false, error: class name}]
"""

import json
import sys
import time
import urllib.error
import urllib.request

import bittensor as bt
from bittensor import http_auth
from bittensor.sp_core import Keypair


def crypto_code(name):
    return {"sr25519": 1, "ed25519": 0}[name]


def payload(cases):
    out = []
    for c in cases:
        p = http_auth.build_payload(
            scheme=c["scheme"],
            method=c["method"],
            path=c["path"],
            body=bytes.fromhex(c["body_hex"]),
            nonce_ns=c["nonce"],
            sender_ss58=c["sender"],
            receiver_ss58=c["receiver"],
        )
        out.append(p.hex())
    return out


def derive(cases):
    return [Keypair.create_from_mnemonic(c["phrase"], crypto_code(c["crypto"])).ss58_address for c in cases]


def env(name):
    import os

    return os.environ.get(name) or None


def new_wallet(path, name, hotkey):
    w = bt.Wallet(name=name, hotkey=hotkey, path=path)
    cold_pw = env("COLD_PW")
    w.create_new_coldkey(use_password=cold_pw is not None, coldkey_password=cold_pw, suppress=True)
    hot_pw = env("HOT_PW")
    crypto = crypto_code(env("HOT_CRYPTO") or "sr25519")
    w.create_new_hotkey(use_password=hot_pw is not None, hotkey_password=hot_pw, suppress=True, crypto_type=crypto)
    hot = w.get_hotkey(hot_pw) if hot_pw else w.hotkey
    return {"coldkey": w.coldkeypub.ss58_address, "hotkey": hot.ss58_address}


def load_wallet(path, name, hotkey):
    w = bt.Wallet(name=name, hotkey=hotkey, path=path)
    result = {
        "hotkey": w.hotkey.ss58_address,
        "coldkeypub": w.coldkeypub.ss58_address,
        "hotkeypub": w.hotkeypub.ss58_address,
    }
    if env("COLD_PW"):
        result["coldkey"] = w.get_coldkey(env("COLD_PW")).ss58_address
    return result


def send(url, receiver, path, name, hotkey, requests):
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=path)
    results = []
    sent = []
    for r in requests:
        if r.get("resend") is not None:
            req = sent[r["resend"]]
        else:
            body = bytes.fromhex(r["body_hex"])
            nonce = time.time_ns() + int(r.get("nonce_offset_s", 0) * 1e9)
            headers = http_auth.sign(
                wallet, method=r["method"], path=r["path"], body=body, receiver_ss58=receiver, nonce_ns=nonce
            )
            if r.get("tamper"):
                body = body + b" "
            req = (r["method"], r["path"], body, headers)
        sent.append(req)
        method, target, body, headers = req
        request = urllib.request.Request(
            url + target, data=body if method != "GET" else None, method=method, headers=dict(headers)
        )
        if method != "GET":
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                results.append({"status": resp.status, "body": resp.read().hex()})
        except urllib.error.HTTPError as e:
            results.append({"status": e.code, "body": e.read().hex()})
    return results


def verify(receiver, requests):
    out = []
    store = http_auth.InMemoryNonceStore()
    for r in requests:
        try:
            caller = http_auth.verify(
                r["headers"],
                bytes.fromhex(r["body_hex"]),
                method=r["method"],
                path=r["path"],
                self_hotkey_ss58=receiver,
                nonce_store=store,
            )
            out.append({"ok": True, "caller": caller.hotkey_ss58})
        except http_auth.AuthError as e:
            out.append({"ok": False, "error": type(e).__name__})
    return out


def main():
    command, args = sys.argv[1], sys.argv[2:]
    stdin = sys.stdin.read()
    data = json.loads(stdin) if stdin.strip() else None
    if command == "payload":
        result = payload(data)
    elif command == "derive":
        result = derive(data)
    elif command == "new-wallet":
        result = new_wallet(*args)
    elif command == "load-wallet":
        result = load_wallet(*args)
    elif command == "send":
        result = send(*args, data)
    elif command == "verify":
        result = verify(*args, data)
    else:
        raise SystemExit(f"unknown command {command}")
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
