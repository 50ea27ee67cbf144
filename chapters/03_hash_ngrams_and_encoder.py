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
# # 03 · Hash n-grams and the local encoder
#
# Chapter 02 cut bytes into patches. Now we turn each patch into one
# vector for the global model. That is the job of the **local encoder**
# (BLT paper §3.2): a small byte transformer whose byte states are
# pooled into patches by cross-attention. Before the encoder even runs,
# each byte is enriched with **hash n-gram embeddings**, so that a byte
# "knows" the few bytes before it.
#
# **Learning goals**
#
# - Compute the rolling polynomial hash of every n-gram, by hand, and see
#   why the reference lets it overflow.
# - Build the encoder's input embedding: byte embedding plus hashed
#   3..8-gram embeddings.
# - Pool byte states into patches: max-pool, then cross-attention where
#   each patch's query slots see only their own patch's bytes.
# - Check every inline version against `bltlib`, which the rest of the
#   book uses.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import bltlib
from bltlib import bytes as B
from bltlib import data, env
from bltlib.entropy import entropies
from bltlib.model.blt import BLT, BLTConfig, patch_ids_from_lengths
from bltlib.model.hashing import PRIMES, HashConfig, ngram_hash_ids
from bltlib.model.layers import TransformerConfig, causal_mask, rope_table
from bltlib.model.local import patch_reduce
from bltlib.patching import entropy_starts, starts_to_lengths
from bltlib.pipeline import entropy_model_for
from bltlib.recipes import get_recipe

print(env.format_report())
FAST = bltlib.fast_mode()
torch.set_num_threads(2)

# %% [markdown]
# ## A byte alone says little
#
# A byte embedding table has 260 rows. The byte `e` gets the same vector
# in `def`, in `else` and in `self`. A token model would have separate
# rows for those words; a byte model must rebuild them from context. The
# BLT gives the encoder a head start: for every byte it also looks up an
# embedding for each n-gram *ending* at that byte, n = 3..8, and adds
# them all up.
#
# There are far too many n-grams to give each its own row, so they are
# **hashed** into a fixed number of buckets. Collisions are accepted:
# the model learns to live with them.
#
# ## The rolling polynomial hash
#
# The reference hashes the window of ids `w_0 .. w_{n-1}` (oldest first)
# as `sum_j w_j * prime**j`, in 64-bit integer arithmetic, then takes
# the remainder modulo the number of buckets. Positions before the start
# are padded with id 0. Here it is as a plain loop.

# %%
def my_ngram_hash(ids: list[int], n: int, prime: int,
                  buckets: int) -> list[int]:
    """Bucket of the n-gram ending at each position (64-bit wrap-around)."""
    padded = [0] * (n - 1) + ids
    out = []
    for t in range(len(ids)):
        window = padded[t:t + n]  # oldest byte first
        h = sum(w * prime ** j for j, w in enumerate(window))
        h = (h + 2**63) % 2**64 - 2**63  # wrap like an int64
        out.append(h % buckets)
    return out


text = "def f(self):"
ids = B.encode(text)
mine = my_ngram_hash(ids, 3, PRIMES[0], 2048)
lib = ngram_hash_ids(torch.tensor([ids]), 3, PRIMES[0], 2048)[0]
print(mine)
assert mine == lib.tolist()
print("inline hash == bltlib.model.hashing.ngram_hash_ids")

# %% [markdown]
# Python integers never overflow, so the loop wraps them to 64 bits by
# hand. That matters: `prime**7` with `prime = 1000000007` is about
# 10^63, far beyond 64 bits, and the released BLT weights were trained
# with the wrapped values. Getting this wrong gives the right *kind* of
# embedding but the wrong buckets, and a converted model would be
# silently worse.
#
# The hash of the n-gram ending at byte t depends only on bytes
# t-n+1 .. t, so it never looks at the future:

# %%
# NBVAL_CHECK_OUTPUT
a = ngram_hash_ids(torch.tensor([B.encode("def f(self):")]), 3,
                   PRIMES[0], 2048)[0]
b = ngram_hash_ids(torch.tensor([B.encode("def g(self):")]), 3,
                   PRIMES[0], 2048)[0]
print("3-gram buckets that changed:", (a != b).nonzero().flatten().tolist())

# %% [markdown]
# Changing byte 4 (`f` -> `g`) changes exactly the three 3-grams that
# contain it: those ending at bytes 4, 5 and 6.
#
# ## How many collisions?
#
# With 2048 buckets per n and thousands of distinct n-grams in real
# code, many n-grams share a bucket. Let us count on held-out code.

# %%
code = data.load_text("code", "val", max_bytes=20_000 if FAST else 200_000)
code_ids = torch.tensor(B.encode(code))
print(f"{len(code):,} bytes of held-out code")
print(" n  distinct n-grams  buckets used (of 2048)")
for n in range(3, 9):
    grams = {code[t - n + 1:t + 1] for t in range(n - 1, len(code))}
    used = ngram_hash_ids(code_ids[None], n, PRIMES[0], 2048).unique()
    print(f"{n:2d}  {len(grams):16,d}  {used.numel():12,d}")

# %% [markdown]
# Short n-grams are few and mostly get buckets of their own; long ones
# vastly outnumber the buckets, so each bucket blends many of them. The
# reference BLT uses 500,002 buckets per n at scale; our toy models use
# 2,048 to keep the tables small.
#
# ## The encoder's input embedding
#
# Now the embedding itself. Every (hash function, n) pair owns a slice of
# one big table; the looked-up rows are added to the byte embedding. We
# build a small BLT and recompute its input embedding by hand.

# %%
local = TransformerConfig(dim=32, n_layers=1, n_heads=2,
                          rope_theta=500000.0, sliding_window=8)
cfg = BLTConfig(encoder=local, decoder=local,
                global_model=TransformerConfig(dim=64, n_layers=1,
                                               n_heads=2),
                hashing=HashConfig(sizes=(3, 4, 5, 6, 7, 8), vocab=2048),
                cross_attn_k=2)
model = BLT(cfg, seed=0).eval()
enc = model.local_encoder
x = torch.tensor([B.encode("def f(self):")])  # (1, T)

with torch.no_grad():
    emb = enc.embed_tokens(x)  # (1, T, D)
    for table, n in enumerate(cfg.hashing.sizes):
        rows = ngram_hash_ids(x, n, PRIMES[0], cfg.hashing.vocab)
        emb = emb + enc.hash_embedding.embedding(
            rows + table * cfg.hashing.vocab)
    torch.testing.assert_close(emb, enc.embed(x))
print("inline embedding == LocalEncoder.embed, shape", tuple(emb.shape))

# %% [markdown]
# ## Local encoder layers
#
# The encoder is an ordinary causal transformer over bytes (RMSNorm,
# rotary positions, SiLU-gated MLP), usually with a **sliding window**:
# byte i sees only the last `window` bytes. Locality is all it needs,
# and the window keeps the cost linear in the length.

# %%
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(causal_mask(16, window=4), cmap="Blues")
ax.set(title="causal mask, window 4", xlabel="key byte",
       ylabel="query byte")
plt.show()

# %% [markdown]
# ## Pooling bytes into patches
#
# After its layers, the encoder has one state per byte. Each patch must
# become one vector (or, with `cross_attn_k = K`, K vectors) for the
# global model. The BLT does it in two steps:
#
# 1. **initialise** each patch's query by max-pooling its own bytes'
#    states, then project it to K query slots;
# 2. **cross-attend**: each slot attends to the bytes of *its own patch
#    only* and adds what it reads.
#
# We take patch boundaries from the entropy model of chapter 02 (trained
# once and cached; the first run trains it).

# %%
ent_model = entropy_model_for("entropy-small", fast=FAST)
recipe = get_recipe("blt-code", fast=FAST)
snippet = data.load_text("code", "val")[3000:3040]
e = entropies(ent_model, snippet)
starts = entropy_starts(e, threshold=float(e.quantile(0.7)),
                        max_patch_length=recipe.max_patch_length)
lengths = [1] + starts_to_lengths(starts).tolist()  # BOS is its own patch
print(repr(snippet.decode()))
print("patch lengths:", lengths)

# %%
ids = torch.tensor([B.encode(snippet, bos=True)])  # (1, T)
lengths_t = torch.tensor([lengths])
pid = patch_ids_from_lengths(lengths_t, ids.shape[1])  # (1, T)
n_patches = len(lengths)

with torch.no_grad():
    h = enc.embed(ids)
    rope = rope_table(cfg.encoder, h)
    for layer in enc.layers:
        h = layer(h, causal_mask(ids.shape[1], window=8), rope)
    # step 1, inline: max over the bytes of each patch
    pooled = torch.stack([h[0, pid[0] == p].max(0).values
                          for p in range(n_patches)])[None]
    torch.testing.assert_close(pooled, patch_reduce(h, pid, n_patches))
print("inline max-pool == bltlib.model.local.patch_reduce")

# %% [markdown]
# The cross-attention mask: slot `s` of patch `p` is query row
# `p * K + s`, and it may read byte t only if byte t belongs to patch p.

# %%
K = cfg.cross_attn_k
mine = torch.zeros(n_patches * K, ids.shape[1], dtype=torch.bool)
for q in range(n_patches * K):
    mine[q] = pid[0] == q // K
masks = model.masks(lengths_t, ids.shape[1])
assert torch.equal(mine, masks["enc_cross"][0])
print("inline pooling mask == BLT.masks()['enc_cross']")

# %% [markdown]
# ## Which bytes does each patch query read?
#
# Let us look inside the cross-attention: the attention weights of every
# query slot over the bytes (averaged over heads). The model here is
# untrained, so *within* a patch the weights are arbitrary; what training
# never changes is the block structure the mask imposes. A query sees its
# own patch and nothing else, so no information leaks between patches
# before the global model.

# %%
cross = enc.cross_attn_layers[0]
with torch.no_grad():
    hd, heads = cfg.encoder.head_dim, cfg.encoder.n_heads
    pe = enc.patch_embedding_projection(pooled).reshape(1, -1, 32)
    q = cross.q_proj(cross.q_norm(pe)).view(1, -1, heads, hd)
    k = cross.k_proj(cross.k_norm(h)).view(1, -1, heads, hd)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / hd**0.5
    scores = scores.masked_fill(~masks["enc_cross"][:, None], -torch.inf)
    weights = scores.softmax(-1).mean(1)[0]  # (P*K, T)

labels = ["BOS"] + [B.id_to_str(i).strip("'") for i in ids[0, 1:].tolist()]
fig, ax = plt.subplots(figsize=(11, 4.5))
ax.imshow(weights, cmap="viridis", aspect="auto")
ax.set_xticks(range(len(labels)), labels, fontsize=7)
ax.set_ylabel("patch query slot (p*K + s)")
ax.set_title("encoder cross-attention: each slot reads its own patch")
for boundary in torch.cumsum(torch.tensor(lengths), 0)[:-1]:
    ax.axvline(boundary - 0.5, color="white", lw=0.8)
plt.show()

# %% [markdown]
# ## The whole encoder in one call
#
# `bltlib` packages these steps as `LocalEncoder.forward`. It returns the
# byte states (which the decoder will reuse in chapter 04) and the patch
# vectors, K slots of width D concatenated per patch.

# %%
with torch.no_grad():
    h_lib, patches = enc(ids, masks["enc_ids"], n_patches,
                         masks["byte_self"], masks["enc_cross"])
print("byte states", tuple(h_lib.shape), "patch vectors",
      tuple(patches.shape))
counts = model.param_counts()
print({k: f"{v:,}" for k, v in counts.items()})

# %% [markdown]
# A note on one reference quirk: the cross-attention block returns
# `o_proj(attention) + query`, and the encoder adds the query once more.
# The residual enters twice. `bltlib` keeps this so that converted
# reference weights give the same outputs (a test compares our logits
# with the `transformers` implementation of the BLT).
#
# ## Summary
#
# - Each byte's input is its embedding plus hashed embeddings of the
#   3..8-grams ending at it: cheap local context, with collisions.
# - The hash is a rolling polynomial in wrapping 64-bit arithmetic,
#   reduced modulo the bucket count.
# - The local encoder is a small causal (sliding-window) transformer.
# - Patches are pooled in two steps: max-pool the patch's bytes into K
#   query slots, then cross-attend to the patch's own bytes only.
#
# ## Exercises
#
# 1. Which 4-grams change when you edit byte 6 of a 20-byte string?
# 2. With `cross_attn_k = 2` and 5 patches, how many patch vectors does
#    the global model read, and how wide is each (D = 32)?
# 3. Why may a patch query not read the bytes of the *next* patch?

# %%
# Answers, checked.
s1 = torch.tensor([B.encode("abcdefghijklmnopqrst")])
s2 = s1.clone()
s2[0, 6] += 1
changed = (ngram_hash_ids(s1, 4, PRIMES[0], 4096)
           != ngram_hash_ids(s2, 4, PRIMES[0], 4096))[0]
assert changed.nonzero().flatten().tolist() == [6, 7, 8, 9]
# 2: the encoder returns (B, P, K*D): 5 vectors of width 64.
m5 = model.masks(torch.tensor([[1, 1, 1, 1, 1]]), 5)
out5 = enc(ids[:, :5], m5["enc_ids"], 5, m5["byte_self"], m5["enc_cross"])
assert out5[1].shape == (1, 5, 64)
# 3: the global model is causal over patches; if patch p's vector held
#    bytes of patch p + 1, the latent used to predict those bytes would
#    already contain them (a leak). The mask forbids it:
assert not masks["enc_cross"][0, 0:K, lengths[0]:].any()
print("exercises checked")
