# Reads files written by gumbelgrad with the reference safetensors reader, and writes
# one for gumbelgrad to read back. Needs `pip install safetensors numpy`; run in a
# folder holding model.safetensors and f64.safetensors (see docs/nn-and-data.md).
import numpy as np
from safetensors.numpy import load_file, save_file
from safetensors import safe_open
d = load_file("./model.safetensors")
for k, v in d.items(): print("python read", k, v.dtype, v.shape)
w = d["encoder.1.weight"]; print("python encoder.1.weight[3,7] =", repr(float(w[3,7])), "sum =", float(w.astype(np.float64).sum()))
with safe_open("./model.safetensors", framework="np") as f: print("metadata", f.metadata())
e = load_file("./f64.safetensors"); print({k: (v.dtype, v.shape, v.tolist()) for k, v in e.items()})
save_file({"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), dtype=np.float64), "s": np.array(2.5, dtype=np.float32)}, "./from_python.safetensors", metadata={"format": "np"})
