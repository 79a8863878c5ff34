"""Makes tests/models/data (torch_init_refs.json, a tiny authors' checkpoint) with torch and their code.

Not run by the tests (torch is no dependency of the project); run once, by hand, in a separate venv:

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy einops
    git clone https://github.com/lorenzocelli/centralflows /tmp/authors
    git -C /tmp/authors checkout 93cad93
    curl -o /tmp/simple_vit.py \
        https://raw.githubusercontent.com/lucidrains/vit-pytorch/main/vit_pytorch/simple_vit.py
    /tmp/torchvenv/bin/python tests/models/make_torch_init_refs.py --authors /tmp/authors \
        --simple-vit /tmp/simple_vit.py

Each case builds one architecture with the authors' `create()` after `torch.manual_seed(seed)`, exactly
as their main.py does, and stores per parameter (named_parameters() order) its shape, the sha256 of its
float32 bytes, its float64 sum and 16 evenly spaced entries (float32 bit patterns). A second part stores raw
draws of the generator (uniform_, normal_ on both sides of the 16-element vectorised path), and a tiny
checkpoint is written the way the authors' Checkpointer writes one.
"""

import argparse
import hashlib
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data"
SAMPLES = 16  # per parameter, evenly spaced: a few hundred entries per case

# (arch, our options, seed): every architecture at the paper's defaults with two seeds, and small ones
# the way the ci scale shrinks them. Our option names; `authors_model` turns them into the authors' call.
CASES = [
    *[(a, {}, s) for a in ("mlp", "cnn", "resnet", "vit", "lstm", "transformer", "mamba") for s in (0, 1)],
    ("mlp", {"width": 32}, 3),
    ("cnn", {"width": 8}, 0),
    ("resnet", {"width": 4, "stage_sizes": [1, 1]}, 2),
    ("vit", {"dim": 16, "depth": 1, "heads": 2, "mlp_dim": 32, "init_scale": 1.0}, 0),
    ("lstm", {"hidden": 16, "embed_dim": 8, "layers": 1}, 5),
    (
        "transformer",
        {"d_model": 16, "heads": 2, "layers": 1, "dim_feedforward": 32, "weight_multiplier": 0.5},
        0,
    ),
    ("mamba", {"d_model": 16, "layers": 1, "dt_rank": 1}, 4),
]
IMAGE = (3, 32, 32)  # CIFAR-10, NCHW as the authors' loaders give it
SEQUENCE = (15,)  # sorting inputs: length 2·8 − 1
OUTPUTS = 4  # 4 classes; vocabulary 4 for sorting


def import_authors(root: Path, simple_vit: Path):
    """Imports the authors' src.architectures, with vit_pytorch given by its SimpleViT file alone."""
    sys.modules["torchvision"] = types.ModuleType("torchvision")  # vit_pytorch's package imports it
    vit = types.ModuleType("vit_pytorch")
    code = compile(simple_vit.read_text(), str(simple_vit), "exec")
    exec(code, vit.__dict__)
    vit.ViT = None  # the authors' simple=True path only
    sys.modules["vit_pytorch"] = vit
    sys.path.insert(0, str(root))
    import src.architectures as arch  # noqa: E402
    import src.utils as utils  # noqa: E402

    return arch, utils


def authors_model(A, arch: str, o: dict):
    """The authors' module for our options (their dataclass fields; their fixed values must match ours)."""
    if arch == "mlp":
        assert o.get("depth", 2) == 2
        return A.MLP(width=o.get("width", 256)).create(IMAGE, OUTPUTS)
    if arch == "cnn":
        return A.CNN(width=o.get("width", 32)).create(IMAGE, OUTPUTS)
    if arch == "resnet":
        return A.Resnet(width=o.get("width", 16), stage_sizes=tuple(o.get("stage_sizes", (3, 3, 3)))).create(
            IMAGE, OUTPUTS
        )
    if arch == "vit":
        return A.VIT(
            dim=o.get("dim", 64),
            depth=o.get("depth", 4),
            num_heads=o.get("heads", 8),
            mlp_dim=o.get("mlp_dim", 256),
            init_scale=o.get("init_scale", 0.0),
        ).create(IMAGE, OUTPUTS)
    if arch == "lstm":
        return A.LSTM(
            layers=o.get("layers", 2), embd_dim=o.get("embed_dim", 48), hidden_dim=o.get("hidden", 48)
        ).create(SEQUENCE, OUTPUTS)
    if arch == "transformer":
        # Transformer.create with dim_feedforward free (theirs is 4·d_model)
        from src.architectures.transformer import TransformerLM
        from src.architectures.utils import TrainableLayerNorm, replace_layernorm

        d = o.get("d_model", 32)
        net = TransformerLM(
            OUTPUTS,
            d_model=d,
            nhead=o.get("heads", 4),
            num_layers=o.get("layers", 4),
            dim_feedforward=o.get("dim_feedforward", 4 * d),
            dropout=0.0,
            max_seq_length=SEQUENCE[0],
        )
        replace_layernorm(net, TrainableLayerNorm)
        with torch.no_grad():
            net.output_layer.weight *= o.get("weight_multiplier", 0.0)
        return net
    if arch == "mamba":
        assert o.get("dt_rank", 4) == math.ceil(o.get("d_model", 64) / 16)  # their dt_rank 'auto'
        return A.Mamba(layers=o.get("layers", 2), d_model=o.get("d_model", 64)).create(SEQUENCE, OUTPUTS)
    raise ValueError(arch)


def probe_inputs(arch: str) -> np.ndarray:
    """Two fixed inputs: NCHW images (the test feeds their NHWC transpose) or token ids."""
    if arch in ("lstm", "transformer", "mamba"):
        return ((np.arange(2 * SEQUENCE[0]) * 7 + 3) % OUTPUTS).reshape(2, *SEQUENCE)
    return np.sin(0.01 * np.arange(2 * math.prod(IMAGE))).reshape(2, *IMAGE).astype(np.float32)


def outputs(model, arch: str, params=None) -> list:
    """The network's outputs on probe_inputs (optionally at other parameters), float64 lists."""
    x = torch.from_numpy(probe_inputs(arch))
    with torch.no_grad():
        y = model(x) if params is None else torch.func.functional_call(model, params, (x,))
    return y.double().numpy().tolist()


def summary(t: torch.Tensor) -> dict:
    a = t.detach().numpy().astype(np.float32)
    flat = a.reshape(-1)
    idx = sample_index(flat.size)
    return {
        "shape": list(a.shape),
        "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
        "sum": float(a.astype(np.float64).sum()),
        "bits": flat[idx].view(np.uint32).tolist(),
    }


def sample_index(n: int) -> np.ndarray:
    """The entries sampled from a parameter of n entries (the test uses the same function)."""
    return np.unique(np.linspace(0, n - 1, min(SAMPLES, n)).round().astype(np.int64))


def generator_draws() -> list:
    """Raw draws after manual_seed(7): sizes around the 16-element blocks, mean and std not 0/1."""
    torch.manual_seed(7)
    ops = [
        ("uniform", 7, -0.3, 0.3),
        ("normal", 5, 0.0, 1.0),
        ("normal", 16, 0.0, 0.02),
        ("normal", 37, 0.5, 1.5),
        ("uniform", 100, 0.0, 1.0),
        ("normal", 3, 0.0, 1.0),
        ("normal", 4096, 0.0, 0.1),
        ("normal", 1, -1.0, 2.0),
        ("uniform", 333, -0.07, 0.07),
    ]
    out = []
    for kind, n, a, b in ops:
        t = torch.empty(n)
        t.uniform_(a, b) if kind == "uniform" else t.normal_(a, b)
        out.append({"kind": kind, "n": n, "a": a, "b": b, **summary(t)})
    return out


def write_checkpoint(utils, out: Path):
    """A checkpoint of the authors' Checkpointer (np.savez of the processes' flattened to_dict()) for a
    tiny RMSProp ResNet (its head follows a (c, h, w) flatten): discrete and central processes with
    distinct entries of w (the init plus a ramp, so a misplaced entry shows) and a state [t, ν]."""
    import src.architectures as A

    torch.manual_seed(11)
    model = A.Resnet(width=2, stage_sizes=(1,)).create(IMAGE, OUTPUTS)
    w, _ = utils.flatten_pytree({k: v.detach() for k, v in model.named_parameters()})
    procs = {}
    for name, shift in (("discrete", 0.0), ("central", 0.25)):
        wp = w + shift + 1e-3 * torch.arange(w.numel())
        state, _ = utils.flatten_pytree({"t": torch.tensor(3.0), "nu": wp**2})
        procs[name] = {"w": wp, "state": state}
    from torch.utils._pytree import tree_map

    params = utils.flatten_pytree({k: v.detach() for k, v in model.named_parameters()})[1](
        procs["discrete"]["w"]
    )

    data = utils.flatten_dict(tree_map(utils.to_numpy, procs), sep=".")  # as Checkpointer.maybe_checkpoint
    data["step"] = 3
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "checkpoint_3.npz", **data)
    return {
        "arch": "resnet",
        "options": {"width": 2, "stage_sizes": [1]},
        "seed": 11,
        "step": 3,
        "discrete_outputs": outputs(model, "resnet", params),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=Path, required=True, help="checkout of lorenzocelli/centralflows")
    parser.add_argument("--simple-vit", type=Path, required=True, help="vit_pytorch/simple_vit.py")
    args = parser.parse_args()
    A, utils = import_authors(args.authors, args.simple_vit)
    cases = []
    for arch, options, seed in CASES:
        torch.manual_seed(seed)  # main.py: manual_seed, data.load (numpy only), arch.create
        model = authors_model(A, arch, options)
        params = {k: summary(v) for k, v in model.named_parameters()}
        cases.append(
            {
                "arch": arch,
                "options": options,
                "seed": seed,
                "params": params,
                "outputs": outputs(model, arch),
            }
        )
        print(arch, options, seed, sum(math.prod(p["shape"]) for p in params.values()), "parameters")
    refs = {
        "torch": torch.__version__,
        "cases": cases,
        "generator": generator_draws(),
        "checkpoint": write_checkpoint(utils, DATA / "authors_checkpoint"),
    }
    (DATA / "torch_init_refs.json").write_text(json.dumps(refs, separators=(",", ":")))


if __name__ == "__main__":
    main()
