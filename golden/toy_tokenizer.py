"""Train a small Gemma-style SentencePiece tokenizer and write it the way an official SigLIP 2 checkpoint stores it.

The official checkpoints ship Gemma's 256k SentencePiece tokenizer (docs/preprocessing.md "Text"). Tests and the demo model cannot download it,
so they use a toy model trained here with Gemma's layout: BPE with byte fallback, no dummy prefix, identity
normalisation, pad=0, eos=1, bos=2, unk=3, mask=4. The files written are those of a Hub checkpoint:
`tokenizer.model`, `tokenizer.json` (converted by the installed transformers, as the official recipe does),
`tokenizer_config.json` and `special_tokens_map.json` (exactly as `save_pretrained` of transformers 4.57.6 writes
them for this recipe, checked field by field: that version family wrote the Hub files of the real checkpoints).

Needs sentencepiece and transformers (with protobuf); used by golden generators and the demo-model builder only.

Mirrors: convert_siglip2_to_hf.get_siglip2_tokenizer (GemmaTokenizerFast with add_bos_token=False,
add_eos_token=True, padding_side="right", model_input_names=["input_ids"], then save_pretrained).
"""

import io
import json
import os
import shutil
import tempfile

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # ids 0..4, as in Gemma


def train_sentencepiece(texts, vocab_size):
    """Serialized SentencePiece BPE model (bytes) with Gemma's special ids and normalisation settings."""
    import sentencepiece as spm

    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("make_gemma_style_tokenizer: need at least one non-empty training text")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=buf,
        model_type="bpe",
        vocab_size=int(vocab_size),
        hard_vocab_limit=False,  # small corpora may not support vocab_size pieces
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        allow_whitespace_only_pieces=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<mask>"],  # id 4
        num_threads=1,  # deterministic
        minloglevel=2,
    )
    return buf.getvalue()


def hub_tokenizer_config():
    """tokenizer_config.json as transformers 4.x `save_pretrained` writes it for the SigLIP 2 recipe."""
    # <mask> is a user-defined SentencePiece piece (as in Gemma), which 4.x records as a non-special added token.
    added = {
        str(i): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                 "special": tok != "<mask>"}
        for i, tok in enumerate(SPECIALS)
    }
    return {
        "add_bos_token": False,
        "add_eos_token": True,
        "added_tokens_decoder": added,
        "bos_token": "<bos>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<eos>",
        "extra_special_tokens": {},
        "model_input_names": ["input_ids"],
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<pad>",
        "padding_side": "right",
        "sp_model_kwargs": None,
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }


def hub_special_tokens_map():
    """special_tokens_map.json as transformers 4.x writes it for a Gemma tokenizer."""
    def entry(tok):
        return {"content": tok, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    return {"bos_token": entry("<bos>"), "eos_token": entry("<eos>"), "pad_token": entry("<pad>"),
            "unk_token": entry("<unk>")}


def convert_to_tokenizer_json(model_path, out_dir):
    """Write tokenizer.json by converting tokenizer.model with the installed transformers' Gemma tokenizer."""
    import transformers

    cls = getattr(transformers, "GemmaTokenizerFast", None) or transformers.GemmaTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(model_path, os.path.join(tmp, "tokenizer.model"))
        tok = cls.from_pretrained(
            tmp, add_bos_token=False, add_eos_token=True, padding_side="right", model_input_names=["input_ids"]
        )
        tok.save_pretrained(tmp)  # writes tokenizer.json next to the copy
        shutil.copy(os.path.join(tmp, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json"))


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def make_gemma_style_tokenizer(texts, out_dir, vocab_size):
    """Train a Gemma-style SentencePiece BPE model on `texts` and write checkpoint tokenizer files into `out_dir`.

    Returns `out_dir`. `vocab_size` is an upper bound (the trainer may stop earlier on a small corpus); it must
    leave room for the 5 special pieces and the 256 byte-fallback pieces (so at least ~300).
    """
    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, "tokenizer.model")
    with open(model_path, "wb") as f:
        f.write(train_sentencepiece(list(texts), vocab_size))
    convert_to_tokenizer_json(model_path, out_dir)
    write_json(os.path.join(out_dir, "tokenizer_config.json"), hub_tokenizer_config())
    write_json(os.path.join(out_dir, "special_tokens_map.json"), hub_special_tokens_map())
    return out_dir


def text_with_token_count(hf_tok, target, sentence):
    """The shortest prefix of `sentence` repeated 20 times whose encoding by transformers' tokenizer `hf_tok`
    (without EOS) has exactly `target` tokens: texts just below, at and above the 64-token limit."""
    long_text = " ".join([sentence] * 20)
    for end in range(1, len(long_text) + 1):
        if len(hf_tok(long_text[:end], add_special_tokens=False)["input_ids"]) == target:
            return long_text[:end]
    raise RuntimeError(f"no prefix with exactly {target} tokens")
