"""An independent reader of PyTorch checkpoint files: Python's own zipfile and
pickle, with an Unpickler restricted to what a state dict contains. It is not
the host's code; host/tests/checkpoint_format.rs compares what each reads.

usage: python pth_reader.py FILE OUT.json
Writes a JSON summary: every path to a leaf, with tensors as
{"dtype", "shape", "sha256"} of their little-endian contiguous bytes.
"""
import collections
import hashlib
import json
import pickle
import sys
import zipfile

ITEMSIZE = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
            "LongStorage": 8, "IntStorage": 4, "ByteStorage": 1, "BoolStorage": 1}
DTYPE = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
         "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
         "ByteStorage": "uint8", "BoolStorage": "bool"}


class StorageType:
    def __init__(self, name):
        self.name = name


class Tensor:
    def __init__(self, dtype, shape, data):
        self.dtype, self.shape, self.data = dtype, shape, data


def main(path, out_path):
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")]
        assert len(pkl) == 1, pkl
        root = pkl[0][: -len("data.pkl")]

        def rebuild(storage, offset, size, stride, requires_grad, hooks, *metadata):
            kind, numel, key = storage
            item = ITEMSIZE[kind]
            raw = z.read(f"{root}data/{key}")
            assert len(raw) == numel * item, "storage size"
            count = 1
            for d in size:
                count *= d
            expect = 1
            for d, s in reversed(list(zip(size, stride))):
                assert d == 1 or s == expect, "contiguous"
                expect *= d
            return Tensor(DTYPE[kind], list(size), raw[offset * item:(offset + count) * item])

        class Restricted(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild
                if module == "torch" and name in ITEMSIZE:
                    return StorageType(name)
                raise pickle.UnpicklingError(f"refused global {module}.{name}")

            def persistent_load(self, pid):
                tag, storage_type, key, location, numel = pid
                assert tag == "storage"
                return (storage_type.name, numel, key)

        obj = Restricted(z.open(pkl[0])).load()

    leaves = {}

    def walk(prefix, v):
        if isinstance(v, dict):
            leaves[prefix + "{}"] = {"kind": "ordered" if isinstance(v, collections.OrderedDict) else "dict", "keys": [str(k) for k in v]}
            for k, x in v.items():
                walk(f"{prefix}/{k}", x)
        elif isinstance(v, (list, tuple)):
            leaves[prefix + "[]"] = {"kind": type(v).__name__, "len": len(v)}
            for i, x in enumerate(v):
                walk(f"{prefix}/{i}", x)
        elif isinstance(v, Tensor):
            leaves[prefix] = {"dtype": v.dtype, "shape": v.shape, "sha256": hashlib.sha256(v.data).hexdigest()}
        else:
            leaves[prefix] = {"value": v}

    walk("", obj)
    with open(out_path, "w") as f:
        json.dump(leaves, f, sort_keys=True)


main(sys.argv[1], sys.argv[2])
