"""DT parity: the authors' Decision Transformer (kzl/decision-transformer, gym/, PyTorch + HuggingFace GPT-2) trained by
its own `SequenceTrainer` on o2o's initial parameters and o2o's batch of windows.

    python benchmarks/parity/dt.py --reference /work/refs/decision-transformer --inputs INPUTS

Its training script (gym/experiment.py) loads D4RL pickles and a gym environment, so the adapter builds what that
script builds, from o2o's config, and hands it to the reference's own classes:
- the model: `DecisionTransformer(state_dim, act_dim, max_length=K, max_ep_len, hidden_size, n_layer, n_head,
  n_inner=4 hidden_size, activation_function, n_positions=1024, resid_pdrop, attn_pdrop)` as experiment.py calls it,
  o2o's initial parameters copied in (its unused heads, predict_state / predict_return and GPT-2's token embedding
  wte, get no gradient and stay as they are);
- the optimiser and schedule as experiment.py makes them: `torch.optim.AdamW(lr, weight_decay)`,
  `LambdaLR(lambda steps: min((steps + 1) / warmup_steps, 1))`, the loss `torch.mean((a_hat - a) ** 2)`;
- `SequenceTrainer.train_iteration(num_steps=1)` run once per update (train_step: forward, masked loss, backward,
  clip_grad_norm_(0.25), AdamW step; then the scheduler's step), its get_batch returning the fixture's windows laid out
  as experiment.py's get_batch lays them out: left-padded (states 0 before standardization, actions -10, returns-to-go
  0, timesteps 0, attention mask 0), states standardized with the fixture's statistics, returns-to-go divided by its
  `scale` (1 / o2o's return_scale) with the extra last entry its trainer drops, timesteps capped at max_ep_len - 1.
  o2o pads at the right and masks the padding out of the loss only; neither model has positional embeddings (the
  reference's GPT-2 has its position embedding removed, timesteps are embedded instead), so a valid step's output is
  the same either way.
Dropout: its masks are drawn inside torch modules and cannot be injected, so the fixture has dropout 0 on both sides
(o2o's `dropout`; the reference's resid_pdrop and attn_pdrop, and embd_pdrop, which experiment.py leaves at
GPT2Config's 0.1 whatever --dropout says: at o2o's default 0.1 the two agree). What is compared is the rest of the
update, exactly.
LayerNorm epsilon: o2o's is 1e-6 (Flax's), the reference's 1e-5 (GPT2Config's and torch's); the adapter builds the
reference with 1e-6 (its GPT2Config argument, and its embedding LayerNorm's eps), see the fixture's JSON.
"""

from __future__ import annotations

import copy
import sys

import fixture
import numpy as np

OUT_OF_WINDOW_ACTION = -10.0  # experiment.py's padding of actions
FLAX_LAYER_NORM_EPSILON = 1e-6  # o2o's LayerNorms' (Flax's default); the reference's are 1e-5


def to_reference(init: dict, n_head: int) -> dict[str, np.ndarray]:
    """o2o's parameters (the actor's Flax tree) as the reference model's state_dict entries (torch Linear weights are
    (out, in); GPT-2's Conv1D weights are (in, out), its attention projections q | k | v side by side, heads in
    order)."""
    p = init["actor"]
    linear = lambda dense: {"weight": dense["kernel"].T, "bias": dense["bias"]}
    norm = lambda layer: {"weight": layer["scale"], "bias": layer["bias"]}
    out = {"embed_timestep.weight": p["Embed_0"]["embedding"]}
    for name, dense in (("embed_return", "Dense_0"), ("embed_state", "Dense_1"), ("embed_action", "Dense_2"),
                        ("predict_action.0", "Dense_3")):
        out.update({f"{name}.{k}": v for k, v in linear(p[dense]).items()})
    out.update({f"embed_ln.{k}": v for k, v in norm(p["LayerNorm_0"]).items()})
    out.update({f"transformer.ln_f.{k}": v for k, v in norm(p["LayerNorm_1"]).items()})
    blocks = sorted((k for k in p if k.startswith("Block_")), key=lambda k: int(k.split("_")[1]))
    for i, name in enumerate(blocks):
        block, prefix = p[name], f"transformer.h.{i}"
        attention = block["MultiHeadDotProductAttention_0"]
        width = attention["query"]["kernel"].shape[0]
        assert attention["query"]["kernel"].shape[1] == n_head
        out[f"{prefix}.attn.c_attn.weight"] = np.concatenate(
            [attention[k]["kernel"].reshape(width, -1) for k in ("query", "key", "value")], axis=1)
        out[f"{prefix}.attn.c_attn.bias"] = np.concatenate(
            [attention[k]["bias"].reshape(-1) for k in ("query", "key", "value")])
        out[f"{prefix}.attn.c_proj.weight"] = attention["out"]["kernel"].reshape(-1, width)
        out[f"{prefix}.attn.c_proj.bias"] = attention["out"]["bias"]
        out.update({f"{prefix}.ln_1.{k}": v for k, v in norm(block["LayerNorm_0"]).items()})
        out.update({f"{prefix}.ln_2.{k}": v for k, v in norm(block["LayerNorm_1"]).items()})
        # o2o's MLP: Dense_0(gelu(Dense_1(LayerNorm_1(x)))), Dense_1 the inner (width -> 4 width) layer
        for layer, dense in (("c_fc", "Dense_1"), ("c_proj", "Dense_0")):
            out[f"{prefix}.mlp.{layer}.weight"], out[f"{prefix}.mlp.{layer}.bias"] = (block[dense]["kernel"],
                                                                                      block[dense]["bias"])
    return out


def from_reference(state: dict[str, np.ndarray], init: dict) -> dict:
    """The reference's state_dict in o2o's structure (the inverse of `to_reference`)."""
    p = init["actor"]
    dense = lambda name: {"kernel": state[f"{name}.weight"].T, "bias": state[f"{name}.bias"]}
    norm = lambda name: {"scale": state[f"{name}.weight"], "bias": state[f"{name}.bias"]}
    conv = lambda name: {"kernel": state[f"{name}.weight"], "bias": state[f"{name}.bias"]}  # GPT-2's Conv1D: (in, out)
    out = {"Embed_0": {"embedding": state["embed_timestep.weight"]}, "Dense_0": dense("embed_return"),
           "Dense_1": dense("embed_state"), "Dense_2": dense("embed_action"), "Dense_3": dense("predict_action.0"),
           "LayerNorm_0": norm("embed_ln"), "LayerNorm_1": norm("transformer.ln_f")}
    blocks = sorted((k for k in p if k.startswith("Block_")), key=lambda k: int(k.split("_")[1]))
    for i, name in enumerate(blocks):
        prefix, attention = f"transformer.h.{i}", p[name]["MultiHeadDotProductAttention_0"]
        width, heads, head_dim = attention["query"]["kernel"].shape
        qkv_w = np.split(state[f"{prefix}.attn.c_attn.weight"], 3, axis=1)
        qkv_b = np.split(state[f"{prefix}.attn.c_attn.bias"], 3)
        mha = {k: {"kernel": w.reshape(width, heads, head_dim), "bias": b.reshape(heads, head_dim)}
               for k, w, b in zip(("query", "key", "value"), qkv_w, qkv_b)}
        mha["out"] = {"kernel": state[f"{prefix}.attn.c_proj.weight"].reshape(heads, head_dim, width),
                      "bias": state[f"{prefix}.attn.c_proj.bias"]}
        out[name] = {"MultiHeadDotProductAttention_0": mha, "LayerNorm_0": norm(f"{prefix}.ln_1"),
                     "LayerNorm_1": norm(f"{prefix}.ln_2"),
                     "Dense_0": conv(f"{prefix}.mlp.c_proj"), "Dense_1": conv(f"{prefix}.mlp.c_fc")}
    return {"actor": out}


def reference_windows(windows: dict[str, np.ndarray], mean: np.ndarray, std: np.ndarray, scale: float,
                      max_ep_len: int) -> dict[str, np.ndarray]:
    """o2o's right-padded windows as experiment.py's get_batch lays them out: each window's valid steps moved to its
    end, the padding before them."""
    batch, k = windows["mask"].shape
    state_dim, act_dim = windows["observations"].shape[-1], windows["actions"].shape[-1]
    s = np.zeros((batch, k, state_dim), np.float32)
    a = np.full((batch, k, act_dim), OUT_OF_WINDOW_ACTION, np.float32)
    rtg = np.zeros((batch, k + 1, 1), np.float32)  # its trainer feeds rtg[:, :-1]
    timesteps = np.zeros((batch, k), np.int64)
    mask = np.zeros((batch, k), np.float32)
    for i in range(batch):
        valid = int(windows["mask"][i].sum())
        assert windows["mask"][i, :valid].all() and not windows["mask"][i, valid:].any(), "o2o pads at the right"
        s[i, k - valid:] = windows["observations"][i, :valid]
        a[i, k - valid:] = windows["actions"][i, :valid]
        rtg[i, k - valid:k, 0] = windows["returns_to_go"][i, :valid] / scale
        timesteps[i, k - valid:] = np.minimum(windows["timesteps"][i, :valid], max_ep_len - 1)
        mask[i, k - valid:] = 1.0
    s = (s - mean) / std  # experiment.py standardizes after padding
    return {"states": s, "actions": a, "rewards": np.zeros((batch, k, 1), np.float32),
            "dones": np.zeros((batch, k), np.int64), "rtg": rtg, "timesteps": timesteps, "attention_mask": mask}


def main() -> None:
    args = fixture.arguments(__doc__.splitlines()[0])
    inputs = fixture.Inputs(args.inputs)
    config, meta = inputs.config, inputs.meta
    import torch
    import transformers

    torch.manual_seed(0)
    dtype = torch.float64 if args.float64 else torch.float32
    sys.path.insert(0, str(args.reference / "gym"))
    from decision_transformer.models.decision_transformer import DecisionTransformer
    from decision_transformer.training.seq_trainer import SequenceTrainer

    assert config["dropout"] == 0.0, "dropout masks cannot be injected: the fixture compares the update without them"
    assert config["normalize_observations"]
    width, k = config["embedding_dim"], config["context_length"]
    model = DecisionTransformer(
        state_dim=meta["observation_dim"], act_dim=meta["action_dim"], max_length=k, max_ep_len=config["max_timestep"],
        hidden_size=width, n_layer=config["num_layers"], n_head=config["num_heads"], n_inner=4 * width,
        activation_function="relu", n_positions=1024, resid_pdrop=config["dropout"], attn_pdrop=config["dropout"],
        embd_pdrop=config["dropout"], layer_norm_epsilon=FLAX_LAYER_NORM_EPSILON)  # relu: experiment.py's default
    model.embed_ln.eps = FLAX_LAYER_NORM_EPSILON  # its embedding LayerNorm takes torch's default 1e-5
    model = model.to(dtype)
    init = inputs.tree("init")
    state = model.state_dict()
    for name, value in to_reference(init, config["num_heads"]).items():
        assert tuple(state[name].shape) == value.shape, f"{name}: {tuple(state[name].shape)} vs {value.shape}"
        state[name] = torch.as_tensor(np.ascontiguousarray(value), dtype=dtype)
    model.load_state_dict(state)

    scale = 1.0 / config["return_scale"]
    windows = reference_windows(inputs.tree("batch"), inputs.arrays["spec/observation_mean"],
                                inputs.arrays["spec/observation_std"], scale, config["max_timestep"])
    tensors = {name: torch.as_tensor(value, dtype=dtype if value.dtype == np.float32 else torch.long)
               for name, value in windows.items()}
    order = ("states", "actions", "rewards", "dones", "rtg", "timesteps", "attention_mask")

    warmup_steps = config["warmup_steps"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda steps: min((steps + 1) / warmup_steps, 1))
    trainer = SequenceTrainer(model=model, optimizer=optimizer, batch_size=meta["batch_size"],
                              get_batch=lambda batch_size: tuple(tensors[n].clone() for n in order),
                              scheduler=scheduler,
                              loss_fn=lambda s_hat, a_hat, r_hat, s, a, r: torch.mean((a_hat - a) ** 2), eval_fns=[])
    assert config["grad_clip"] == 0.25, "the reference's trainer clips at 0.25"

    def parameters() -> dict:
        return from_reference({n: v.detach().cpu().numpy().copy() for n, v in model.state_dict().items()}, init)

    losses, after_1 = [], None
    with fixture.LossRecorder(torch) as recorder:
        for i in range(inputs.steps):
            trainer.train_iteration(num_steps=1)
            (loss,) = recorder.take()
            losses.append(loss)
            if i == 0:
                after_1 = copy.deepcopy(parameters())
                for block in model.transformer.h:  # the key bias's gradient (the middle third) is rounding noise
                    query, key, _ = block.attn.c_attn.bias.grad.split(width)
                    assert key.norm() <= 1e-5 * query.norm(), (float(key.norm()), float(query.norm()))

    blocks = sorted(k for k in init["actor"] if k.startswith("Block_"))
    deviations = [
        {"name": "MLP nonlinearity (a bug, fixed)",
         "reference": "ReLU (experiment.py: --activation_function relu, the gym setting)",
         "o2o": "ReLU since this fixture; was GELU (Flax's tanh approximation), which put the 100-update parameters "
                "1.4e-2 away from the reference's (the test's perturbation)",
         "in_this_fixture": "as the reference"},
        {"name": "window layout",
         "reference": "get_batch pads a window that runs past its episode's end on the left (states 0, actions -10, "
                      "returns-to-go 0, timesteps 0) and masks the padding out of attention and the loss",
         "o2o": "sample_batch pads on the right (zeros) and masks the padding out of the loss only",
         "in_this_fixture": "the same windows, each in its side's layout; no effect: neither model has positional "
                            "embeddings and attention is causal, so a valid step sees the same tokens either way"},
        {"name": "LayerNorm epsilon",
         "reference": "1e-5 (torch.nn.LayerNorm, GPT2Config.layer_norm_epsilon)",
         "o2o": "1e-6 (flax.linen.LayerNorm)",
         "in_this_fixture": "aligned to o2o's: the reference built with layer_norm_epsilon=1e-6 and its embed_ln.eps "
                            "set to 1e-6; with 1e-5 the 100-update parameters differ by 3.1e-5 in float64 (2.3e-5 in "
                            "float32), within the tolerance but above everything else"},
        {"name": "embedding dropout",
         "reference": "GPT2Config's embd_pdrop 0.1, which experiment.py leaves whatever --dropout says (that sets "
                      "resid_pdrop and attn_pdrop)",
         "o2o": "`dropout` on the embeddings too: the same at the paper's 0.1",
         "in_this_fixture": "0 on both sides (the adapter passes embd_pdrop = dropout = 0)"},
        {"name": "gradient clipping",
         "reference": "torch.nn.utils.clip_grad_norm_: gradients times 0.25 / (norm + 1e-6) when norm > 0.25",
         "o2o": "optax.clip_by_global_norm: times 0.25 / norm",
         "in_this_fixture": "as each does: a relative 1e-6 / norm (what is left in float64: ~1e-8)"},
    ]
    fixture.write(
        args, inputs, repository="kzl/decision-transformer",
        versions={"torch": torch.__version__, "transformers": transformers.__version__, "numpy": np.__version__},
        why="the authors' code (Chen et al., 2021; gym/); its GPT-2 copy imports transformers 4.5.1 (its pinned "
            "version), installed without tokenizers, which the model does not use",
        losses={"action_loss": losses}, after_1=after_1, after_all=parameters(),
        tolerance={"losses": 1e-4, "after_1": 1e-4, "after_all": 1e-4, **fixture.TOLERANCE_NOTE},
        injected=[("the batch of windows: the reference's get_batch (numpy draws of trajectories and start steps) "
                   "is replaced by the fixture's windows, drawn by o2o's sampler (dt.sample_batch), the same for every "
                   "update")],
        not_injected=[("dropout masks (torch and Flax draw them inside their modules): dropout 0 on both sides, so "
                       "the fixture compares everything else of the update")],
        deviations=deviations,
        gradient_free={f"actor/{block}/MultiHeadDotProductAttention_0/key/bias":
                       "the key bias shifts all of a query's attention logits by one amount, which the softmax "
                       "cancels: its gradient is rounding noise (the adapter checks < 1e-5 of the query bias's in the "
                       "reference), and its first Adam step, noise / (|noise| + eps), differs between the two sides"
                       for block in blocks},
        notes=[(f"one block {config['embedding_dim']} wide with {config['num_heads']} heads (the paper's: 3 blocks "
                f"of 128, 1 head; two heads check the head split of the conversion), K {config['context_length']}, "
                f"{meta['batch_size']} windows, max_timestep {config['max_timestep']} (some windows' timesteps pass "
                "it and share its last embedding)"),
               (f"learning rate {config['learning_rate']}, weight decay {config['weight_decay']}, warm-up "
                f"{config['warmup_steps']} updates: 100 updates cross the end of the warm-up, and the decay shows"),
               ("optax computes Adam's bias correction 1 - 0.999^t in float32 (1.3e-5 off at t = 1), torch in "
                "float64: o2o's first steps are 6.6e-6 shorter, the biases' after_1 errors"),
               ("states standardized with the fixture's statistics on both sides (o2o's normalizer; the adapter for "
                "the reference, as experiment.py does with its dataset's)")],
    )


if __name__ == "__main__":
    main()
