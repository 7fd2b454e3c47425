"""The defaults of generation and export that several parts of tfllm state, each defined once.

It imports nothing, so that the `tfllm` command gives them as its flags' defaults and in its help without loading
TensorFlow; the library's functions take them as their arguments' defaults.
"""

# New tokens per prompt when a call names no number: `CausalLM.generate` and `stream`, a chat reply (lowered to fit
# the context), an export's serving_default (within its limit) and `tfllm generate`.
MAX_NEW_TOKENS = 64
# The most new tokens a request to an exported model may ask for; at most half a Transformer's context.
MAX_NEW_TOKENS_LIMIT = 256
# The most texts one request to an exported model may hold.
MAX_BATCH_SIZE = 64
