"""A nanoGPT-style GPT in PyTorch, the eager-mode reference of `transformer_training.py`.

The same network as tfllm's `TransformerLM` with learned positions: token and position embeddings, pre-layer-norm
blocks of causal self-attention and a GELU MLP (every projection with a bias), a final layer norm, and logits from
the token embedding matrix (tied). Its parameter count equals `TransformerLM`'s of the same sizes. Attention is
`torch.nn.functional.scaled_dot_product_attention(is_causal=True)`, PyTorch's fastest eager kernel for it.

Example (needs PyTorch: benchmarks/requirements.txt):

    model = TorchGPT(vocab_size=259, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                     max_sequence_length=8)
    logits = model(torch.zeros(2, 8, dtype=torch.long))  # (B, T) -> (B, T, V)
    optimizer = adamw(model, learning_rate=3e-3, weight_decay=0.1)
"""

import torch
from torch import nn
from torch.nn import functional


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden_dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.query_key_value = nn.Linear(hidden_dim, 3 * hidden_dim)  # the three projections in one matmul
        self.output = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x):
        batch, length, hidden = x.shape  # (B, T, D)
        query, key, value = self.query_key_value(x).split(hidden, dim=2)  # 3 x (B, T, D)
        query, key, value = (tensor.view(batch, length, self.num_heads, -1).transpose(1, 2)
                             for tensor in (query, key, value))  # (B, H, T, Dh)
        mixed = functional.scaled_dot_product_attention(query, key, value, is_causal=True)  # (B, H, T, Dh)
        return self.output(mixed.transpose(1, 2).reshape(batch, length, hidden))  # (B, T, D)


class Block(nn.Module):
    def __init__(self, hidden_dim, num_heads, intermediate_dim, layer_norm_epsilon):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_dim, eps=layer_norm_epsilon)
        self.attention = CausalSelfAttention(hidden_dim, num_heads)
        self.mlp_norm = nn.LayerNorm(hidden_dim, eps=layer_norm_epsilon)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, intermediate_dim), nn.GELU(),
                                 nn.Linear(intermediate_dim, hidden_dim))

    def forward(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))  # (B, T, D)


class TorchGPT(nn.Module):
    """A GPT of pre-layer-norm causal blocks with tied embeddings (nanoGPT's layout, exact GELU as tfllm's)."""

    def __init__(self, vocab_size, num_layers, num_heads, hidden_dim, intermediate_dim, max_sequence_length,
                 layer_norm_epsilon=1e-5):
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}")
        self.token_embedding = nn.Embedding(vocab_size, hidden_dim)
        self.position_embedding = nn.Embedding(max_sequence_length, hidden_dim)
        self.blocks = nn.ModuleList(Block(hidden_dim, num_heads, intermediate_dim, layer_norm_epsilon)
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(hidden_dim, eps=layer_norm_epsilon)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, token_ids):
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        x = self.token_embedding(token_ids) + self.position_embedding(positions)  # (B, T, D)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x) @ self.token_embedding.weight.T  # (B, T, V): tied logits

    def count_params(self):
        return sum(parameter.numel() for parameter in self.parameters())


def adamw(model, learning_rate, weight_decay, betas=(0.9, 0.95), fused=True):
    """AdamW as tfllm's `compile()` sets it: weight decay on the matrices and embeddings, none on biases and
    layer norms (the one-dimensional parameters). `fused`: PyTorch's one-kernel update, its fastest on CPUs."""
    parameters = list(model.parameters())
    groups = [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)


def train_step(model, optimizer, inputs, targets, clip_norm, autocast_dtype=None):
    """One eager training step: forward, mean cross-entropy, backward, global-norm clipping, AdamW update; the loss.
    `autocast_dtype` (torch.bfloat16) runs the forward pass under CPU autocast, PyTorch's mixed precision."""
    with torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None):
        logits = model(inputs)  # (B, T, V)
        loss = functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss.detach()
