"""The SDK's timelock side for host/tests/timelock_interop.rs, run through its own functions.

usage: python tlock_interop.py bittensor_core|bittensor_drand CASES.json OUT.json
CASES.json is a list of requests; OUT.json gets one answer (or {"error": ...}) per request:
- {"op": "decrypt", "ciphertext": hex, "round": n, "signature": hex}: `decrypt_with_signature` on the
  ciphertext in the SDK's `UserData` envelope (SCALE: the ciphertext as Vec<u8>, then the round as u64),
  which is what that function takes -> {"plaintext": hex};
- {"op": "encrypt_at_round", "data": hex, "round": n} -> {"envelope": hex, "round": n}: the SDK's envelope;
- {"op": "commit", the keyword arguments of `get_encrypted_commit_v2` (hotkey as hex)}
  -> {"commit": hex, "round": n, "t0": s, "t1": s}: t0 and t1 are the wall clock just before and after
  the call, which reads the clock itself. With "aim_round" and "ingest_blocks" instead of "block_time",
  the block time is chosen (negative) so that the SDK's formula lands mid-way into that round: the way
  to get a commit encrypted to a past round, whose signature is known.
"""
import importlib
import json
import sys
import time

module_name, path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
sdk = importlib.import_module(module_name)
QUICKNET_GENESIS, QUICKNET_PERIOD = 1692803367, 3


def compact(n):
    """SCALE compact encoding of a length."""
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return ((n << 2) | 1).to_bytes(2, "little")
    if n < 1 << 30:
        return ((n << 2) | 2).to_bytes(4, "little")
    raise ValueError("too long")


def answer(case):
    op = case["op"]
    if op == "decrypt":
        ct = bytes.fromhex(case["ciphertext"])
        envelope = compact(len(ct)) + ct + case["round"].to_bytes(8, "little")
        return {"plaintext": bytes(sdk.decrypt_with_signature(envelope, case["signature"])).hex()}
    if op == "encrypt_at_round":
        envelope, round_ = sdk.encrypt_at_round(bytes.fromhex(case["data"]), case["round"])
        return {"envelope": bytes(envelope).hex(), "round": round_}
    if op == "commit":
        kwargs = {k: v for k, v in case.items() if k not in ("op", "aim_round", "ingest_blocks")}
        kwargs["hotkey"] = bytes.fromhex(kwargs["hotkey"])
        if "aim_round" in case:
            target = QUICKNET_GENESIS + case["aim_round"] * QUICKNET_PERIOD + QUICKNET_PERIOD / 2
            kwargs["block_time"] = (target - time.time()) / case["ingest_blocks"]
        t0 = time.time()
        commit, round_ = sdk.get_encrypted_commit_v2(**kwargs)
        t1 = time.time()
        return {"commit": bytes(commit).hex(), "round": round_, "t0": t0, "t1": t1}
    raise ValueError(f"unknown op {op}")


with open(path) as f:
    cases = json.load(f)
out = []
for case in cases:
    try:
        out.append(answer(case))
    except Exception as e:  # the SDK refuses: the test compares that it refused
        out.append({"error": type(e).__name__, "message": str(e)})
with open(out_path, "w") as f:
    json.dump(out, f)
