"""A tiny causal LM built on the fly (no download): byte-level BPE tokenizer + random ~30k-parameter Llama."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Two plus two is four. Three times three is nine.",
    "Question: what colour is the sky? Answer: blue.",
    "A quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "Evaluation pipelines measure models on suites of samples.",
    "Water boils at 100 degrees Celsius at sea level.",
    "You are a helpful assistant. Answer briefly and correctly.",
]

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]

# Only system/user/assistant roles are valid: anything else raises, as real templates do.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unsupported role: ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + eos_token }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_tiny_model(path: str | Path, *, chat_template: bool = True, seed: int = 0,
                     vocab_size: int = 400, hidden_size: int = 32, max_positions: int = 512,
                     eos_bias: float = 0.0, bos: bool = True) -> str:
    """Build and save a tiny random Llama with its tokenizer under ``path``; return the folder.

    ``eos_bias`` > 0 makes the model end some answers with EOS (0.5: some stop early, some run to the limit);
    at 0 it practically never stops. ``bos=False`` gives a Qwen-style tokenizer: no BOS token at all (none
    declared, none added when encoding; the chat template starts without one), only EOS and padding.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    bos_id = tok.token_to_id("<|bos|>") if bos else None
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B", special_tokens=[("<|bos|>", bos_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>" if bos else None,
                                        eos_token="<|eos|>", pad_token="<|pad|>", model_max_length=max_positions)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE if bos else CHAT_TEMPLATE.removeprefix("{{ bos_token }}")
    tokenizer.save_pretrained(str(out))

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True, bos_token_id=bos_id, eos_token_id=tok.token_to_id("<|eos|>"),
        pad_token_id=tok.token_to_id("<|pad|>"), initializer_range=0.5,
    )
    model = LlamaForCausalLM(config)
    if eos_bias:
        with torch.no_grad():  # a shared direction in every embedding that the (tied) EOS row points along
            embeddings = model.get_input_embeddings().weight
            embeddings[:, 0] += eos_bias
            embeddings[config.eos_token_id, 0] += 4 * eos_bias
    model.save_pretrained(str(out), safe_serialization=True)
    return str(out)


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-model"))


def prefix_token(tokenizer) -> int:  # type: ignore[no-untyped-def]
    """lm-eval's ``prefix_token_id``, written out: BOS when the tokenizer has one, else EOS."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
