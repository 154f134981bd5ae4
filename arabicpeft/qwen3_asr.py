"""The Qwen3-ASR family (``model_type`` "qwen3_asr"), one entry of :data:`arabicpeft.backbones.BACKBONES`.

transformers' native ``Qwen3ASRForConditionalGeneration`` (the ``Qwen/Qwen3-ASR-0.6B-hf`` and ``-1.7B-hf``
checkpoints): an audio tower (128-mel log-mel in 1 s chunks, windowed attention) whose output fills the
``<|audio_pad|>`` positions of a chat prompt read by a Qwen3 language model. Arabic is forced as its processor
documents (``apply_transcription_request(language=...)``): the assistant turn is prefilled with
``language Arabic<asr_text>``, so the model generates only the transcript, then ``<|im_end|>``. Labels cover the
transcript and that end token only (prompt and audio positions -100).

Long audio: the reference package transcribes at most 1200 s in one piece (``MAX_ASR_INPUT_SECONDS`` in
QwenLM/Qwen3-ASR ``qwen_asr/inference/utils.py``) and splits longer audio; :data:`MAX_INPUT_SECONDS` is that
window, so transcription cuts longer files into speech regions of at most that length.

Test models: :func:`build` writes a random-weight Qwen3-ASR of a published size (:data:`ARCHITECTURES`: 0.6B,
1.7B; the audio tower and text model sizes of the published configs) or the tiny one, with a tiny byte-level BPE
tokenizer trained on the sample transcripts plus the special tokens the processor and chat template use (the
real tokenizer cannot be downloaded here). torch and transformers load inside functions.

Public: :data:`MAX_INPUT_SECONDS`, :data:`ARCHITECTURES`, :class:`Qwen3ASRCollator`, :class:`Qwen3ASR`,
:func:`tiny_tokenizer`, :func:`build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from . import audio as audio_lib
from . import placement

MAX_INPUT_SECONDS = 1200  # QwenLM/Qwen3-ASR qwen_asr/inference/utils.py MAX_ASR_INPUT_SECONDS (no timestamps)
DEFAULT_MAX_NEW_TOKENS = 448  # the transcript budget when none is given: Whisper's decoder limit, for comparable runs
_END = "<|im_end|>"  # the end of the assistant turn: the end of a transcript
_SPECIAL = ["<|endoftext|>", "<|im_start|>", _END, "<|audio_start|>", "<|audio_end|>", "<|audio_pad|>"]
_MARKER = "<asr_text>"  # not special: the processor's decode finds it in text decoded without special tokens
# Qwen2's pre-tokenizer split (tokenizer.json of the Qwen2/Qwen3 tokenizers), then byte-level BPE
_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
          r"\s+(?!\S)|\s+")
# A chat template rendering what the processor asks of one (system text, user audio, the prefilled assistant turn)
# in the ChatML layout of the Qwen chat templates; the real checkpoints bring their own.
_CHAT_TEMPLATE = (
    "{%- for message in messages -%}{{ '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content is string -%}{{ message.content }}{%- else -%}{%- for part in message.content -%}"
    "{%- if part.type == 'audio' -%}{{ '<|audio_start|><|audio_pad|><|audio_end|>' }}"
    "{%- elif part.type == 'text' -%}{{ part.text }}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}")

# Published sizes (audio tower: d_model, layers, heads, FFN, projector output; text model Qwen3: hidden, layers,
# heads, KV heads, head dim, MLP), as the Qwen3-ASR-0.6B/-1.7B configs give them; every size: 128 mel bins,
# downsample 480, vocabulary 151936. "tiny": the same architecture shrunk for tests.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    size: dict(audio=dict(d_model=d, encoder_layers=layers, encoder_attention_heads=heads, encoder_ffn_dim=ffn,
                          output_dim=out, downsample_hidden_size=down),
               text=dict(hidden_size=hidden, num_hidden_layers=t_layers, num_attention_heads=t_heads,
                         num_key_value_heads=kv, head_dim=head_dim, intermediate_size=mlp), vocab_size=vocab)
    for size, (d, layers, heads, ffn, out, down, hidden, t_layers, t_heads, kv, head_dim, mlp, vocab) in {
        "0.6B": (896, 18, 14, 3584, 1024, 480, 1024, 28, 16, 8, 128, 3072, 151936),
        "1.7B": (1024, 24, 16, 4096, 2048, 480, 2048, 28, 16, 8, 128, 6144, 151936),
        "tiny": (32, 2, 2, 64, 32, 8, 32, 2, 2, 1, 16, 64, None),  # vocabulary: the tiny tokenizer's
    }.items()}


def _language_name(code: str = "ar") -> str:
    """A language as Qwen3-ASR's prompt spells it (``"ar"``: "Arabic", the processor's ``LANGUAGE_CODE_TO_NAME``;
    the code is :data:`arabicpeft.backbones.LANGUAGE`, given to :class:`Qwen3ASR`)."""
    from transformers.models.qwen3_asr.processing_qwen3_asr import LANGUAGE_CODE_TO_NAME

    return LANGUAGE_CODE_TO_NAME[code]


@dataclass
class Qwen3ASRCollator:
    """Pads a batch of audio records (``audio``, ``text``) into the model inputs of the prompt with the language
    forced (``input_ids``, ``attention_mask`` (batch, tokens); ``input_features`` (batch, 128, frames);
    ``input_features_mask`` (batch, frames)) and ``labels``. ``training``: the transcript and ``<|im_end|>``
    follow each prompt in ``input_ids`` (right-padded), and ``labels`` are those ids with every prompt, audio and
    padding position -100; else ``input_ids`` is the prompt alone (left-padded, for ``generate``) and ``labels``
    the transcript ids (batch, tokens; -100 = padding), which evaluation decodes as the reference."""

    processor: Any
    training: bool = False
    language: str = "ar"  # forced in the prompt (ISO 639-1)

    def __call__(self, records: list[dict]) -> dict:
        if records and "audio" not in records[0]:
            raise ValueError("Qwen3-ASR trains on audio records (audio + text); features records (precomputed "
                             "80-mel log-mel, otozz) cannot feed it: use source sample or local with audio.")
        clips = [audio_lib.load_audio(r["audio"]) for r in records]
        transcripts = [transcript_ids(self.processor, r["text"]) for r in records]
        batch = prompt_inputs(self.processor, clips, self.language)
        if not self.training:
            batch["labels"] = _padded(transcripts, -100)
            return batch
        prompts = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
        pad = self.processor.tokenizer.pad_token_id
        batch["input_ids"] = _padded([p + t for p, t in zip(prompts, transcripts)], pad)
        batch["attention_mask"] = _padded([[1] * (len(p) + len(t)) for p, t in zip(prompts, transcripts)], 0)
        batch["labels"] = _padded([[-100] * len(p) + t for p, t in zip(prompts, transcripts)], -100)
        return batch


def _padded(rows: list[list[int]], value: int):
    """``rows`` as one long tensor (len(rows), longest row), right-padded with ``value``."""
    import torch

    out = torch.full((len(rows), max(len(r) for r in rows)), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def transcript_ids(processor, text: str) -> list[int]:
    """Token ids of a transcript as the model generates it after ``<asr_text>``: the text, then ``<|im_end|>``.
    (``<asr_text>`` is a token of its own, so the text tokenizes alone exactly as inside the whole turn.)"""
    tokenizer = processor.tokenizer
    return tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.convert_tokens_to_ids(_END)]


def prompt_inputs(processor, clips: list, language: str = "ar") -> dict:
    """Model inputs of the transcription prompt of 16 kHz ``clips`` with ``language`` forced (the processor's
    ``apply_transcription_request``: chat template, audio placeholders expanded, left-padded), float32 on the CPU."""
    prompts = processor.apply_transcription_request(clips, language=_language_name(language), tokenize=False)
    batch = processor(text=prompts, audio=clips, sampling_rate=audio_lib.SAMPLE_RATE)
    return {k: batch[k] for k in ("input_ids", "attention_mask", "input_features", "input_features_mask")}


class Qwen3ASR:
    """Qwen3-ASR (0.6B, 1.7B) as transformers' ``Qwen3ASRForConditionalGeneration``: the family's model, processor,
    prompt, labels, decoding and LoRA targets, asked by the rest of arabicpeft as of every backbone."""

    family = "qwen3_asr"
    exports = ()  # CTranslate2 converts Whisper only
    task = "transcribe"
    decoder_only = True  # the transcript follows the prompt in input_ids (training batches)
    towers = {"encoder": "model.audio_tower.layers", "decoder": "model.language_model.layers"}
    # LoRA target presets: the layer names of both towers (audio tower: q/k/v/out_proj, fc1/fc2; language model:
    # q/k/v/o_proj, gate/up/down_proj); adapter_placement picks the tower by module path.
    lora_targets = {
        "qv": ["q_proj", "v_proj"],
        "qkvo": ["q_proj", "k_proj", "v_proj", "out_proj", "o_proj"],
        "all-linear": ["q_proj", "k_proj", "v_proj", "out_proj", "o_proj", "fc1", "fc2", "gate_proj", "up_proj",
                       "down_proj"],
    }
    # the feed-forward blocks' Linear layers (IA3 scales their inputs): the audio tower's fc1/fc2, the language
    # model's gated MLP
    feedforward = ("fc1", "fc2", "gate_proj", "up_proj", "down_proj")
    # Layers kept at full precision on an int8/nf4 base (bitsandbytes' llm_int8_skip_modules), as Whisper's are:
    # the audio front end, whose convolutions end in a Linear (conv_out; Whisper's front end is Conv1d, which
    # bitsandbytes never replaces), and the projector that carries every audio frame into the language model
    # (1.1 % of the 0.6B model's weights). A list given replaces transformers' default, so the output layer
    # (lm_head, which that default keeps) is named too.
    unquantized = ("model.audio_tower.conv_out", "model.multi_modal_projector", "lm_head")

    def __init__(self, language: str, suppress_choices: tuple[str, ...]):
        """``language``: the ISO 639-1 code forced in every prompt; ``suppress_choices``: the ``suppress`` values
        every backbone's :meth:`decoding_options` accepts (both from :mod:`arabicpeft.backbones`)."""
        self.language, self.suppress_choices = language, suppress_choices

    def load_model(self, path, *, dtype=None, quantization_config=None, device_map=None):
        """The model in ``path`` (a folder or hub id), weights at ``dtype``; OSError when transformers cannot
        read it."""
        from transformers import Qwen3ASRForConditionalGeneration

        return Qwen3ASRForConditionalGeneration.from_pretrained(
            path, dtype=dtype, quantization_config=quantization_config, device_map=device_map)

    def load_processor(self, path, window_seconds: Optional[int] = None):
        """The processor in ``path`` (a model or adapter folder, or a hub id). Its feature extractor's
        ``chunk_length`` is the longest audio decoded in one piece: ``window_seconds``, else
        :data:`MAX_INPUT_SECONDS` (the processor pads each batch to its longest clip, not to this)."""
        from transformers import Qwen3ASRProcessor

        processor = Qwen3ASRProcessor.from_pretrained(path)
        self._set_window(processor, int(window_seconds) if window_seconds else MAX_INPUT_SECONDS)
        return processor

    @staticmethod
    def _set_window(processor, seconds: int) -> None:
        extractor = processor.feature_extractor
        extractor.chunk_length, extractor.n_samples = seconds, seconds * extractor.sampling_rate
        extractor.nb_max_frames = extractor.n_samples // extractor.hop_length

    @staticmethod
    def set_generation(model, max_length: Optional[int]) -> None:
        """Greedy decoding that ends at ``<|im_end|>`` or ``<|endoftext|>`` (the config's end tokens), at most
        ``max_length`` transcript tokens (None: :data:`DEFAULT_MAX_NEW_TOKENS`)."""
        gen = model.generation_config
        gen.eos_token_id, gen.pad_token_id = model.config.eos_token_id, model.config.pad_token_id
        gen.max_new_tokens, gen.max_length = max_length or DEFAULT_MAX_NEW_TOKENS, None

    def label_positions(self, model) -> int:
        """The most label tokens one record may hold: the language model's positions (prompt and audio share
        them; 65536 in the published configs)."""
        return int(model.config.text_config.max_position_embeddings)

    def feature_size(self, config) -> int:
        """Mel bins of the log-mel the model takes (128), from its config (a transformers config, or the dict of its
        ``config.json``: read before anything loads, :func:`arabicpeft.kaggle.check_model_fits_source`)."""
        audio = config["audio_config"] if isinstance(config, dict) else config.audio_config
        return int(audio["num_mel_bins"] if isinstance(audio, dict) else audio.num_mel_bins)

    def cut_window(self, model, processor, seconds) -> None:
        """Qwen3-ASR's audio tower reads any length in 1 s chunks (no fixed window, nothing to cut): only the
        longest audio decoded in one piece becomes ``seconds``. ValueError for a window that is not whole seconds
        or longer than :data:`MAX_INPUT_SECONDS`."""
        if int(seconds) != seconds or not 0 < seconds <= MAX_INPUT_SECONDS:
            raise ValueError(f"encoder_seconds={seconds}: Qwen3-ASR takes whole seconds up to {MAX_INPUT_SECONDS}.")
        self._set_window(processor, int(seconds))

    target_modules = placement.target_modules  # lora_targets on adapter_placement: target_modules(cfg)

    def mixes_adapters(self, model) -> bool:
        """Whether peft's per-utterance ``adapter_names`` can decode a batch that mixes adapters: only when no
        adapter sits in the audio tower, which packs the frames of a batch into one sequence (peft splits a
        layer's input by its batch dimension). Adapters on the language model alone mix."""
        return not any(".audio_tower." in name and hasattr(module, "lora_A") for name, module in model.named_modules())

    def labels(self, processor, text: str) -> list[int]:
        """Label ids of the transcript ``text``: its tokens and ``<|im_end|>`` (:func:`transcript_ids`)."""
        return transcript_ids(processor, text)

    def collator(self, processor, model=None, *, training: bool = False, feature_device: str = "auto",
                 label_tokens: Optional[str] = None) -> Callable:
        """records -> batch (:class:`Qwen3ASRCollator`); log-mel is computed on the CPU (``feature_device`` is
        Whisper's option). ``label_tokens`` (the layout of stored labels) is unused: Qwen3-ASR trains on audio
        records, whose labels it makes from their text (a features record is refused)."""
        return Qwen3ASRCollator(processor, training, self.language)

    def prompt_part(self, processor, batch: dict) -> dict:
        """The model inputs of a training batch (:class:`Qwen3ASRCollator` with ``training``) cut to each prompt
        (every position before its first label), left-padded as ``generate`` takes them, on the batch's device."""
        import torch

        starts = (batch["labels"] != -100).int().argmax(dim=1).tolist()
        width = max(starts)
        ids = batch["input_ids"].new_full((len(starts), width), processor.tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for row, start in enumerate(starts):
            ids[row, width - start:], mask[row, width - start:] = batch["input_ids"][row, :start], 1
        return {"input_ids": ids, "attention_mask": mask, "input_features": batch["input_features"],
                "input_features_mask": batch["input_features_mask"]}

    def audio_inputs(self, processor, clips: list) -> dict:
        """Model inputs of 16 kHz ``clips``: the forced-Arabic prompt (:func:`prompt_inputs`)."""
        return prompt_inputs(processor, clips, self.language)

    def seconds(self, processor, inputs: dict) -> np.ndarray:
        """Seconds of audio in each row of a batch: its ``input_features_mask`` frames (``hop_length`` samples
        each). Shape (batch,)."""
        extractor = processor.feature_extractor
        frames = inputs["input_features_mask"].sum(-1).cpu().numpy()
        return frames * extractor.hop_length / extractor.sampling_rate

    def encoder_states(self, model, inputs: dict):
        """(the audio tower's last hidden states (batch, frames, d_model), each row's frames first and zeros after;
        the number of frames of each row, a LongTensor (batch,)). The tower packs the frames of every clip into one
        sequence (transformers' ``Qwen3ASRAudioEncoder``): they are split back by the frames each clip's
        ``n_window * 2``-frame chunks leave after its convolutions."""
        import torch

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        tower, mask = base.model.audio_tower, inputs["input_features_mask"]
        packed = tower(input_features=inputs["input_features"], input_features_mask=mask).last_hidden_state
        chunk = tower.n_window * 2
        per_chunk = mask.view(mask.shape[0], -1, chunk).sum(-1).reshape(-1).long()
        frames = tower._post_cnn_length(per_chunk).view(mask.shape[0], -1).sum(-1)
        rows = torch.split(packed, frames.tolist())
        return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True), frames

    def generation_budget(self, model, processor, max_new_tokens: Optional[int] = None) -> int:
        """Transcript tokens one decode can produce: ``max_new_tokens``, else the generation config's."""
        asked = max_new_tokens if max_new_tokens is not None else model.generation_config.max_new_tokens
        return int(asked or DEFAULT_MAX_NEW_TOKENS)

    def decoding_options(self, model, processor, suppress: str = "precomputed", num_beams: int = 1) -> dict:
        """``generate``'s options: greedy unless ``num_beams`` (the language is forced by the prompt; Qwen3-ASR has
        no tokens to suppress, so ``suppress`` is only checked). ValueError for an unknown ``suppress``."""
        if suppress not in self.suppress_choices:
            raise ValueError(f"suppress={suppress!r}: choose one of {', '.join(self.suppress_choices)}.")
        return dict(num_beams=num_beams, do_sample=False)

    def generate(self, model, inputs: dict, max_new_tokens: int, options: dict, **kwargs):
        """The new token ids (batch, tokens) after the prompt of one ``generate`` on ``inputs`` (the prompt's model
        inputs on the model's device), at most ``max_new_tokens``, each row ending at an end token and padded with
        ``<|endoftext|>``; ``kwargs``: more ``generate`` arguments (stopping criteria, ``adapter_names``)."""
        if kwargs.get("adapter_names") is not None and not self.mixes_adapters(model):
            raise ValueError("Qwen3-ASR adapters in the audio tower cannot be chosen per utterance (peft's "
                             "adapter_names; the tower packs a batch's frames): decode one adapter at a time.")
        out = model.generate(**inputs, max_new_tokens=int(max_new_tokens), **options, **kwargs)
        return out[:, inputs["input_ids"].shape[1]:]

    def decode(self, processor, ids) -> list[str]:
        """Transcripts of new token ids (batch, tokens), as the processor's ``decode(return_format=
        "transcription_only")`` reads them (special tokens skipped, the text after ``<asr_text>`` if any, its
        repetition fix, stripped)."""
        return processor.extract_transcription(processor.tokenizer.batch_decode(ids, skip_special_tokens=True))

    def card_snippet(self, adapter: bool) -> tuple[list[str], list[str]]:
        """(imports, code) of a model card's snippet that transcribes ``AUDIO`` with plain transformers (the
        adapter in ``MODEL_DIR`` on ``BASE_MODEL`` when ``adapter``), Arabic forced as the processor documents."""
        imports = ["import librosa", *(["from peft import PeftModel"] if adapter else []),
                   "from transformers import AutoProcessor, Qwen3ASRForConditionalGeneration"]
        if adapter:
            load = ["model = PeftModel.from_pretrained(Qwen3ASRForConditionalGeneration.from_pretrained(BASE_MODEL), "
                    "MODEL_DIR).eval()", "processor = AutoProcessor.from_pretrained(BASE_MODEL)"]
        else:
            load = ["model = Qwen3ASRForConditionalGeneration.from_pretrained(MODEL_DIR).eval()",
                    "processor = AutoProcessor.from_pretrained(MODEL_DIR)"]
        decode = ["audio, rate = librosa.load(AUDIO, sr=16000)",
                  f'inputs = processor.apply_transcription_request(audio, language="{_language_name(self.language)}")',
                  "ids = model.generate(**inputs, max_new_tokens=448)[:, inputs.input_ids.shape[1]:]",
                  'print(processor.decode(ids[0], return_format="transcription_only"))']
        return imports, load + decode


def tiny_tokenizer(texts: list[str], vocab_size: int = 400):
    """A byte-level BPE tokenizer (``Qwen2Tokenizer``) trained with ``tokenizers`` on ``texts``, with the special
    tokens of Qwen3-ASR's prompt (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, ``<|audio_start|>``,
    ``<|audio_pad|>``, ``<|audio_end|>``; ``<asr_text>`` added as a non-special token, as the processor's decode
    needs), the processor's audio-token attributes and a ChatML chat template. Any text tokenizes (bytes)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([*texts, f"system\nuser\nassistant\nlanguage {_language_name()}"], trainer)
    tok.add_tokens([AddedToken(_MARKER, special=False, normalized=False)])
    hf = Qwen2TokenizerFast(tokenizer_object=tok, eos_token=_END, pad_token="<|endoftext|>", unk_token=None,
                            bos_token=None, extra_special_tokens={"audio_token": "<|audio_pad|>",
                                                                  "audio_bos_token": "<|audio_start|>",
                                                                  "audio_eos_token": "<|audio_end|>"})
    hf.chat_template = _CHAT_TEMPLATE
    return hf


def build(out_dir, size: str = "tiny", seed: int = 0, texts: Optional[list[str]] = None) -> int:
    """Save into ``out_dir`` a Qwen3-ASR of :data:`ARCHITECTURES` ``size`` with seeded random weights (the
    caller's RNG untouched), the :func:`tiny_tokenizer` (trained on ``texts``, default the sample set's
    transcripts), its chat template and the 128-mel feature extractor. Published sizes keep their 151936-token
    vocabulary (the tokenizer uses its first ids): step time and memory are those of the real model, transcripts
    meaningless. Returns the parameter count; ValueError for an unknown size."""
    import torch
    from transformers import (Qwen3ASRConfig, Qwen3ASRFeatureExtractor, Qwen3ASRForConditionalGeneration,
                              Qwen3ASRProcessor)

    if size not in ARCHITECTURES:
        raise ValueError(f"unknown Qwen3-ASR size {size!r}; choose one of {', '.join(ARCHITECTURES)}.")
    if texts is None:  # the sample set's sentences (package data: the folder arabicpeft.sources reads)
        table = Path(__file__).parent / "sample_data" / "sentences.tsv"
        texts = [line.split("\t")[-1] for line in table.read_text(encoding="utf-8").splitlines()[1:] if line]
    tokenizer = tiny_tokenizer(texts)
    arch, ids = ARCHITECTURES[size], tokenizer.convert_tokens_to_ids
    end, pad, audio = ids(_END), ids("<|endoftext|>"), ids("<|audio_pad|>")
    config = Qwen3ASRConfig(
        audio_config=dict(num_mel_bins=128, **arch["audio"]),
        text_config=dict(vocab_size=arch["vocab_size"] or len(tokenizer), max_position_embeddings=65536,
                         tie_word_embeddings=True, bos_token_id=None, eos_token_id=end, pad_token_id=pad,
                         **arch["text"]),
        audio_token_id=audio, timestamp_token_id=audio, pad_token_id=pad, eos_token_id=[end, pad])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ASRForConditionalGeneration(config)
    Qwen3ASR.set_generation(model, None)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor = Qwen3ASRProcessor(feature_extractor=Qwen3ASRFeatureExtractor(), tokenizer=tokenizer,
                                  chat_template=_CHAT_TEMPLATE)
    processor.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())
