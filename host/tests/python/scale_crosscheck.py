"""Independent encoder for neuron-host's subtensor tests: polkascan's scalecodec
(reading the chain's V14 metadata), hashlib's BLAKE2b and py-sr25519-bindings.

Reads one JSON request on stdin, writes one JSON answer on stdout:

  {"metadata": PATH,
   "calls":   [{"function": NAME, "args": {...}}],                    -> call data hex
   "signed":  [{"hex": EXTRINSIC, "spec_version": N, "transaction_version": N,
                "genesis_hash": HEX, "birth_hash": HEX}],              -> decoded fields, signature check
   "commits": [{"hotkey": HEX, "netuid": N, "uids": [..], "values": [..],
                "salt": [..], "version_key": N}]}                      -> preimage and BLAKE2b-256 hex

Nothing here is shared with the Rust code under test.
"""

import hashlib
import json
import sys

import sr25519
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset

PALLET = "SubtensorModule"


def load(path):
    rc = RuntimeConfigurationObject()
    rc.update_type_registry(load_type_registry_preset("core"))
    with open(path, "rb") as f:
        metadata = rc.create_scale_object("MetadataVersioned", data=ScaleBytes(f.read()))
    metadata.decode()
    rc.add_portable_registry(metadata)
    return rc, metadata


def encode_call(rc, metadata, function, args):
    # JSON cannot carry u128: decimal strings stand for integers.
    args = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in args.items()}
    call = rc.create_scale_object("Call", metadata=metadata)
    return bytes(call.encode({"call_module": PALLET, "call_function": function, "call_args": args}).data)


def encode_type(rc, type_id, value):
    obj = rc.create_scale_object(f"scale_info::{type_id}")
    return bytes(obj.encode(value).data)


def is_empty(rc, type_id):
    """Whether the type encodes to no bytes (an empty struct or tuple)."""
    for candidate in ({}, (), [], None):
        try:
            return len(encode_type(rc, type_id, candidate)) == 0
        except Exception:
            continue
    return False


def hexb(b):
    return "0x" + bytes(b).hex()


def unhex(s):
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def check_signed(rc, metadata, req):
    """Decode a signed extrinsic, rebuild its signing payload from the
    metadata's extension list, and verify the signature over it."""
    raw = unhex(req["hex"])
    ext = rc.create_scale_object("Extrinsic", data=ScaleBytes(raw), metadata=metadata)
    value = ext.decode()
    extensions = metadata.value[1]["V14"]["extrinsic"]["signed_extensions"]
    # The call's bytes are the extrinsic's tail: re-encode the decoded call to find them.
    call_bytes = encode_call(rc, metadata, value["call"]["call_function"],
                             {a["name"]: a["value"] for a in value["call"]["call_args"]})
    assert raw.endswith(call_bytes), "the decoded call does not re-encode to the extrinsic's tail"
    extra = b""
    additional = b""
    implicit = {
        "CheckSpecVersion": req["spec_version"],
        "CheckTxVersion": req["transaction_version"],
        "CheckGenesis": req["genesis_hash"],
        "CheckMortality": req["birth_hash"],
        "CheckMetadataHash": None,
    }
    for e in extensions:
        name = e["identifier"]
        if name == "CheckMortality":
            era = rc.create_scale_object("Era")
            extra += bytes(era.encode(value["era"]).data)
        elif name == "CheckNonce":
            extra += encode_type(rc, e["ty"], value["nonce"])
        elif name == "ChargeTransactionPayment":
            extra += encode_type(rc, e["ty"], value["tip"])
        elif name == "CheckMetadataHash":
            extra += encode_type(rc, e["ty"], value["mode"])
        elif not is_empty(rc, e["ty"]):
            raise SystemExit(f"extension {name} carries data this checker does not know")
        if name in implicit:
            additional += encode_type(rc, e["additional_signed"], implicit[name])
        elif not is_empty(rc, e["additional_signed"]):
            raise SystemExit(f"extension {name} has implicit data this checker does not know")
    payload = bytes(call_bytes + extra + additional)
    if len(payload) > 256:
        payload = hashlib.blake2b(payload, digest_size=32).digest()
    signature = value["signature"]
    sig_bytes = unhex(signature["Sr25519"] if isinstance(signature, dict) else signature)
    address = value["address"]
    public = unhex(address["Id"] if isinstance(address, dict) else address)
    return {
        "signer": hexb(public),
        "era": value["era"],
        "nonce": value["nonce"],
        "tip": value["tip"],
        "mode": value.get("mode"),
        "call_function": value["call"]["call_function"],
        "call_module": value["call"]["call_module"],
        "call_args": {a["name"]: a["value"] for a in value["call"]["call_args"]},
        "payload": hexb(payload),
        "signature_ok": bool(sr25519.verify(sig_bytes, payload, public)),
    }


def commit(rc, req):
    vec = lambda xs: encode_type_name(rc, "Vec<u16>", xs)
    pre = (unhex(req["hotkey"]) + encode_type_name(rc, "u16", req["netuid"]) + vec(req["uids"])
           + vec(req["values"]) + vec(req["salt"]) + encode_type_name(rc, "u64", req["version_key"]))
    return {"preimage": hexb(pre), "hash": hexb(hashlib.blake2b(pre, digest_size=32).digest())}


def encode_type_name(rc, name, value):
    return bytes(rc.create_scale_object(name).encode(value).data)


def keypair(req):
    public, secret = sr25519.pair_from_seed(unhex(req["seed"]))
    return {"public": hexb(public), "secret": hexb(secret)}


def main():
    req = json.load(sys.stdin)
    rc, metadata = load(req["metadata"])
    out = {
        "calls": [hexb(encode_call(rc, metadata, c["function"], c["args"])) for c in req.get("calls", [])],
        "signed": [check_signed(rc, metadata, s) for s in req.get("signed", [])],
        "commits": [commit(rc, c) for c in req.get("commits", [])],
        "keypairs": [keypair(k) for k in req.get("keypairs", [])],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
