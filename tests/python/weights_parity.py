"""Reference weights for host/tests/weights_parity.rs, computed by the SDK's own functions.

usage: python weights_parity.py legacy|sdk11 CASES.json OUT.json
Writes (to OUT.json: the SDK logs to stdout) a JSON list with one [uids, values] (or {"error": ...}) per case.
"""
import json
import sys

mode, path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path) as f:
    cases = json.load(f)
out = []
if mode == "legacy":
    import numpy as np
    from bittensor.utils.weight_utils import convert_weights_and_uids_for_emit, process_weights

    for c in cases:
        uids, weights = process_weights(
            uids=np.array(c["uids"], dtype=np.int64),
            weights=np.array(c["weights"], dtype=np.float32),
            num_neurons=c["n"],
            min_allowed_weights=c["min_allowed"],
            # what subtensor.max_weight_limit() returns: u16_normalized_float
            max_weight_limit=float(c["max_limit"]) / float(65535),
            exclude_quantile=c["exclude_quantile"],
        )
        u, v = convert_weights_and_uids_for_emit(uids, weights)
        out.append([[int(x) for x in u], [int(x) for x in v]])
elif mode == "sdk11":
    from bittensor.intents.weights import _conform, _Preflight

    for c in cases:
        pf = _Preflight(
            uid=c["self_uid"], commit_reveal=False, min_allowed_weights=c["min_allowed"], max_weight_limit=c["max_limit"]
        )
        try:
            u, v = _conform(list(c["uids"]), [float(w) for w in c["weights"]], pf, 1)
            out.append([[int(x) for x in u], [int(x) for x in v]])
        except Exception as e:  # the SDK refuses: compare that it refused
            out.append({"error": type(e).__name__, "message": str(e)})
else:
    sys.exit(f"unknown mode {mode}")
with open(out_path, "w") as f:
    json.dump(out, f)
