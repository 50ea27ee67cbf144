# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · The global transformer and the local decoder
#
# Chapter 03 turned bytes into patch vectors. This chapter finishes the
# BLT: a **latent global transformer** runs over the patch vectors, and a
# **local decoder** turns its outputs back into next-byte predictions
# (BLT paper §3.1 and §3.3).
#
# **Learning goals**
#
# - Explain what the global transformer computes and why it holds most of
#   the parameters.
# - State the decoder's cross-attention rule and derive it from
#   causality: byte i reads the latent of the patch *before* the one that
#   holds byte i + 1.
# - Get the off-by-one right: `logits[:, i]` predicts byte `i + 1`.
# - Prove, by experiment, that no future byte leaks into earlier logits.
# - Check our BLT against an independent implementation.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import bltlib
from bltlib import bytes as B
from bltlib import env
from bltlib.blt_data import collate
from bltlib.model.blt import BLT, BLTConfig, decoder_patch_ids
from bltlib.model.hashing import HashConfig
from bltlib.model.layers import TransformerConfig
from bltlib.recipes import get_recipe

print(env.format_report())
FAST = bltlib.fast_mode()
torch.set_num_threads(2)

# %% [markdown]
# ## The whole pipeline
#
# ```
# bytes --(encoder: hash n-grams, byte layers, pooling)--> patch vectors
#       --(global transformer, causal over patches)------> latents
#       --(decoder: cross-attend to latents, byte layers)-> next-byte logits
# ```
#
# The **global transformer** is an ordinary causal transformer, but its
# positions are patches, not bytes, and it has no vocabulary: it reads
# patch vectors and writes latent vectors. With a mean patch size of 4 it
# runs on a quarter of the positions a byte model would, which is why it
# can afford to be wide. In the paper's 3B model the encoder plus global
# model hold about 18 times the decoder's parameters. Our recipe keeps
# the same shape at toy scale:

# %%
recipe = get_recipe("blt-code")
big = BLT(recipe.model)
counts = big.param_counts()
for name in ("embeddings", "encoder", "global", "decoder", "total"):
    print(f"{name:>10}: {counts[name] / 1e6:6.2f}M")
print("global / decoder =", round(counts["global"] / counts["decoder"], 1))

# %% [markdown]
# The embedding tables (byte and hash n-gram) are large but cost only a
# lookup per byte, so the paper's bandwidth estimate leaves them out; we
# count them apart.
#
# ## The decoder's cross-attention rule
#
# The decoder starts from the encoder's byte states and, before its byte
# layers, cross-attends to the global latents. Which latent may byte i
# read? Causality decides. Byte i's output predicts byte i + 1. Suppose
# byte i + 1 lies in patch p. The latent of patch p has pooled patch p's
# bytes, byte i + 1 among them: reading it would be cheating. The latent
# of patch p - 1 has seen only bytes before patch p, all at positions
# <= i. So:
#
# > **byte i reads the latent of the patch before the one holding
# > byte i + 1.**
#
# Inside a patch that is the previous patch's latent; at the last byte of
# a patch (the next byte opens a new patch) it is the patch's *own*
# latent, the freshest information allowed. The first patch is BOS
# alone, so every real byte has a patch before it.
#
# Here is the rule as a loop, checked against `bltlib`:

# %%
lengths = [1, 3, 2, 4, 3]  # BOS, then four patches; covers 13 positions
seq_len = 12  # the last patch's final byte is the *next*, unseen byte
patch_of = [p for p, n in enumerate(lengths) for _ in range(n)]

rule = [patch_of[i + 1] - 1 for i in range(seq_len)]
lib = decoder_patch_ids(torch.tensor([lengths]), seq_len)[0]
print("byte:         ", list(range(seq_len)))
print("its patch:    ", patch_of[:seq_len])
print("reads latent: ", rule)
assert rule == lib.tolist()

# %% [markdown]
# The patch lengths above sum to 13, one more than the 12 bytes we
# have: the final patch starts at the *next* byte. That is how a
# generator tells the model "the next byte opens a new patch", and then
# byte 11, the last of its patch, may read its own patch's latent. The
# entropy model decides this before the byte exists, because its
# entropy for the next position only needs the bytes so far.

# %%
fig, ax = plt.subplots(figsize=(9, 3.2))
grid = torch.zeros(len(lengths), seq_len)
for i, p in enumerate(rule):
    grid[p, i] = 1
ax.imshow(grid, cmap="Greens", aspect="auto")
ax.set_xticks(range(seq_len),
              [f"{i}\n(p{patch_of[i]})" for i in range(seq_len)])
ax.set_yticks(range(len(lengths)),
              ["BOS latent"] + [f"latent {p}" for p in range(1, 5)])
ax.set_xlabel("byte position (its patch)")
ax.set_title("decoder cross-attention: which latent each byte reads")
plt.show()

# %% [markdown]
# ## The off-by-one, once and for all
#
# `BLT.forward(ids, patch_lengths)` returns logits of shape (B, T, V),
# and **`logits[:, i]` is the distribution of `ids[:, i + 1]`**. So the
# loss pairs `logits[:, :-1]` with `ids[:, 1:]`, and the last position's
# logits are the prediction for the byte after the sequence: exactly the
# one a generator samples next.

# %%
local = TransformerConfig(dim=32, n_layers=2, n_heads=2,
                          rope_theta=500000.0, sliding_window=16)
cfg = BLTConfig(encoder=local, decoder=local,
                global_model=TransformerConfig(dim=64, n_layers=2,
                                               n_heads=2),
                hashing=HashConfig(sizes=(3, 4, 5), vocab=512),
                cross_attn_k=2)
model = BLT(cfg, seed=0).eval()
ids = torch.tensor([B.encode("def add(a, b):", bos=True)])  # (1, 15)
patching = torch.tensor([[1, 4, 4, 3, 3]])  # BOS + 14 bytes
logits = model(ids, patching)
manual = F.cross_entropy(logits[0, :-1], ids[0, 1:])
torch.testing.assert_close(manual, model.loss(ids, patching))
print("logits", tuple(logits.shape), "loss", round(manual.item(), 3),
      "(uniform would be", round(torch.log(torch.tensor(260.)).item(), 3),
      ")")

# %% [markdown]
# ## A perturbation proof of causality
#
# Claims about masks are easy to get wrong, so we test them the blunt
# way: change one byte t and measure how much every position's logits
# move. Positions before t must not move *at all* (exactly zero, not
# just small), whatever the patching.

# %%
gen = torch.Generator().manual_seed(0)
x = torch.randint(4, 260, (1, 40), generator=gen)
x[0, 0] = B.BOS_ID
plen = torch.tensor([[1, 5, 2, 8, 3, 6, 4, 7, 5]])  # sums to 41
with torch.no_grad():
    base = model(x, plen)
    moved = torch.zeros(40, 40)
    for t in range(1, 40):
        y = x.clone()
        y[0, t] = 4 + (y[0, t] - 4 + 97) % 256
        moved[t] = (model(y, plen) - base).abs().amax(-1)[0]

fig, ax = plt.subplots(figsize=(5.5, 4.5))
ax.imshow(moved > 0, cmap="Reds", origin="lower")
ax.set(xlabel="logit position i", ylabel="perturbed byte t",
       title="does changing byte t move logits at i?")
plt.show()
leaks = sum(int((moved[t, :t] > 0).any()) for t in range(1, 40))
print("rows where an earlier logit moved:", leaks)

# %% [markdown]
# The red region is exactly the upper triangle: byte t affects logits at
# positions t and later, never before. (Position t itself moves because
# its logits now condition on the new byte t.)
#
# ## Batches with padding
#
# Rows of different lengths are right-padded with PAD bytes and their
# patch lengths with zeros. Padding never changes the real positions:

# %%
rows = [(torch.tensor(B.encode("import os")), [1, 4, 3, 2]),
        (torch.tensor(B.encode("x = 1")), [1, 2, 3])]
batch_ids, batch_lengths = collate(rows)
print(batch_ids)
print(batch_lengths)
with torch.no_grad():
    batched = model(batch_ids, batch_lengths)
    alone = model(batch_ids[1:, :6], torch.tensor([[1, 2, 3]]))
torch.testing.assert_close(batched[1, :6], alone[0])
print("padded row == row alone")

# %% [markdown]
# ## Checking against an independent implementation
#
# The `transformers` library ships its own BLT (`BltForCausalLM`), the
# format of Meta's released weights. `bltlib.convert` maps its weights
# onto ours, and the test suite compares logits on random models of
# several shapes. Here is one comparison, live:

# %%
from transformers import BltConfig, BltForCausalLM  # noqa: E402

from bltlib.checkpoint import load_weights  # noqa: E402
from bltlib.convert import config_from_hf, state_from_hf  # noqa: E402

sub = dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2,
           cross_attn_k=2, hidden_size_global=64, intermediate_size=96)
torch.manual_seed(0)  # transformers initialises from the global RNG
ref = BltForCausalLM(BltConfig(
    patch_in_forward=False, cross_attn_k=2,
    encoder_hash_byte_group_vocab=101, local_attention_window_len=16,
    encoder_config=sub, decoder_config=sub,
    global_config=dict(hidden_size=64, num_attention_heads=2,
                       num_hidden_layers=2, intermediate_size=128),
    patcher_config=dict(hidden_size=32, num_attention_heads=2,
                        num_hidden_layers=1))).eval()
ours = BLT(config_from_hf(ref.config.to_dict())).eval()
load_weights(ours, state_from_hf(ref.state_dict()))
with torch.no_grad():
    diff = (ours(ids, patching)
            - ref(input_ids=ids, patch_lengths=patching,
                  use_cache=False).logits).abs().max()
print(f"max |logit difference| = {diff:.2e}")
assert diff < 1e-4

# %% [markdown]
# ## Summary
#
# - The global transformer is a causal transformer over patch vectors
#   with no vocabulary; it holds most of the parameters and runs once per
#   patch.
# - The decoder reuses the encoder's byte states, cross-attends to the
#   latents, runs causal byte layers and predicts the next byte.
# - Byte i reads the latent of the patch before the one holding byte
#   i + 1: the previous patch inside a patch, its own at a patch's end.
# - `logits[:, i]` predicts `ids[:, i + 1]`; the perturbation test shows
#   that no future byte reaches an earlier logit.
# - Our BLT matches the `transformers` implementation to float32
#   precision.
#
# ## Exercises
#
# 1. With patch lengths `[1, 2, 2]` over 4 bytes (plus the next), which
#    latent does each byte read?
# 2. Why can't byte i read the latent of its *own* patch when byte i + 1
#    is in the same patch?
# 3. In the perturbation figure, which cell of row t is always red?

# %%
# Answers, checked.
assert decoder_patch_ids(torch.tensor([[1, 2, 2]]), 4)[0].tolist() == \
    [0, 0, 1, 1]
# 2: that latent pooled byte i + 1 itself, the byte being predicted.
# 3: position t: its logits condition on byte t.
assert all(moved[t, t] > 0 for t in range(1, 40))
assert leaks == 0
print("exercises checked")
