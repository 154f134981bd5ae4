"""The Whisper family (OpenAI Whisper, every size through large-v3 and turbo), one entry of
:data:`arabicpeft.backbones.BACKBONES`: loading, the processor (Arabic and transcription forced), labels, the
collators, the decoding pieces evaluation calls, the encoder-window cut, LoRA target presets, the test-model
builder and what export supports. Special-token ids are read from the model's own tokenizer
(:mod:`arabicpeft.whisper_tokens`). torch and transformers load inside functions.

Public: :data:`LANGUAGE`, :data:`SUPPRESS_PROCESSORS`, :class:`WhisperCollator`, :class:`Whisper`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from . import audio as audio_lib
from . import placement, whisper_tokens
from .feature_cache import input_features
from .whisper_tokens import SuppressTokens


LANGUAGE = "ar"  # every family transcribes Arabic (ISO 639-1; each family spells it its own way in its prompt)
SUPPRESS_PROCESSORS = ("precomputed", "transformers")  # Whisper.decoding_options(suppress=...)


# transformers' generation warnings that do not apply to our Whisper ``generate`` calls, silenced deliberately
# (nothing we pass can avoid them): "Passing `generation_config` together with generation-related arguments"
# (transformers' own Whisper ``generate`` passes both to its parent class) and "The attention mask is not set with a
# batched input" (it guards padded token batches; ours are log-mel windows of one size, and Whisper's encoder takes
# no attention mask).
_NOT_FOR_WHISPER = ("Passing `generation_config` together with generation-related arguments",
                    "The attention mask is not set with a batched input")
logging.getLogger("transformers.generation.utils").addFilter(
    lambda record: not str(record.getMessage()).startswith(_NOT_FOR_WHISPER))


def _feature_device(requested: str = "auto") -> str:
    """Where :class:`WhisperCollator` computes log-mel features of audio records: ``"cuda"`` (the whole batch at
    once, the feature extractor's torch path) with a GPU in the main process, else ``"cpu"`` (clip by clip, in
    the DataLoader's workers if any: a forked worker cannot use CUDA). ``requested`` other than "auto" as is."""
    import torch

    if requested != "auto":
        return requested
    in_worker = torch.utils.data.get_worker_info() is not None
    return "cuda" if torch.cuda.is_available() and not in_worker else "cpu"


def _text_labels(tokenizer, text: str) -> list[int]:
    """Label ids of a transcript: the prefix (Arabic, transcribe, no timestamps), the text, ``<|endoftext|>``."""
    return tokenizer(text).input_ids


@dataclass
class WhisperCollator:
    """Pads a batch of features records (otozz ``input_features`` or a feature-cache record, with ``labels``) or
    audio records (``audio``, ``text``) into ``input_features`` (batch, mel bins, frames) and ``labels`` (batch,
    tokens; -100 = ignored). A leading ``decoder_start_token_id`` (``<|startoftranscript|>``, 50258; not
    ``bos_token_id``, 50257) is dropped from each label sequence: the model prepends it again when it shifts the
    labels right, so the decoder sees the otozz prefix exactly once. ``label_tokens``: the layout of the records'
    stored labels (a key of :data:`arabicpeft.whisper_tokens.LABEL_LAYOUTS`, a features source's
    ``label_tokens``); labels in a layout other than the model tokenizer's (otozz labels for large-v3) are made
    again from their text with the model's tokenizer (:func:`arabicpeft.whisper_tokens.remake_labels`), never
    trained on as stored."""

    processor: Any
    decoder_start_token_id: int
    feature_device: str = "auto"  # audio records: where log-mel is computed, see _feature_device()
    label_tokens: Optional[str] = None

    def __post_init__(self):
        self.remake_from = whisper_tokens.to_remake(self.label_tokens, self.processor.tokenizer)

    def features_and_labels(self, record: dict) -> tuple[np.ndarray, list[int]]:
        """(log-mel, label ids) of one record; audio is computed clip by clip on the CPU. Raises ValueError for
        features of another shape than the model takes."""
        extractor = self.processor.feature_extractor
        if "labels" in record:
            features = input_features(record)
            expected = (extractor.feature_size, extractor.nb_max_frames)
            if features.shape != expected:
                raise ValueError(
                    f"input_features of shape {features.shape}, but the model takes {expected} "
                    "(mel bins x frames). otozz features are 80 x 3000: use an 80-mel Whisper (tiny ... large-v2; "
                    "large-v3 takes 128) and keep the full 30 s encoder window (encoder_seconds unset)."
                )
            labels = record["labels"]
            if self.remake_from:
                return features, whisper_tokens.remake_labels(labels, self.remake_from, self.processor.tokenizer)
            return features, list(labels)
        samples = audio_lib.load_audio(record["audio"])
        return audio_lib.log_mel(samples, extractor), _text_labels(self.processor.tokenizer, record["text"])

    def __call__(self, records: list[dict]) -> dict:
        import torch

        device = _feature_device(self.feature_device) if records and "audio" in records[0] else "cpu"
        if device == "cpu":
            features, labels = zip(*(self.features_and_labels(r) for r in records))
        else:  # one call for the batch: STFT and mel filters on the GPU, the result back on the CPU
            extractor = self.processor.feature_extractor
            features = extractor([audio_lib.load_audio(r["audio"]) for r in records],
                                 sampling_rate=audio_lib.SAMPLE_RATE, return_tensors="np", device=device).input_features
            labels = [_text_labels(self.processor.tokenizer, r["text"]) for r in records]
        labels = [ids[1:] if ids and ids[0] == self.decoder_start_token_id else ids for ids in labels]
        width = max(len(ids) for ids in labels)
        padded = torch.full((len(labels), width), -100, dtype=torch.long)
        for row, ids in enumerate(labels):
            padded[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return {"input_features": torch.from_numpy(np.stack(features)), "labels": padded}


class _WithDecoderInputs:
    """A collator's batch plus ``decoder_input_ids`` (the labels shifted right behind the decoder start token,
    exactly as Whisper makes them from labels): with a ``compute_loss_func`` the Trainer takes the labels out of
    the model's inputs, so the decoder needs them given."""

    def __init__(self, collate: Callable, pad_token_id: int, decoder_start_token_id: int):
        self.collate, self.pad_token_id, self.decoder_start_token_id = collate, pad_token_id, decoder_start_token_id

    def __call__(self, records: list[dict]) -> dict:
        from transformers.models.whisper.modeling_whisper import shift_tokens_right

        batch = self.collate(records)
        batch["decoder_input_ids"] = shift_tokens_right(batch["labels"], self.pad_token_id, self.decoder_start_token_id)
        return batch


# --- the Whisper family -----------------------------------------------------------------------------------------


class Whisper:
    """OpenAI Whisper (multilingual tiny ... large-v2, large-v3, large-v3-turbo) as transformers'
    ``WhisperForConditionalGeneration``: an encoder-decoder on log-mel windows (30 s; 80 mel bins, large-v3 128:
    read from the model's config), told the language and task by its decoder prompt
    ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>`` (in ``generation_config``), whose ids are read
    from the model's own tokenizer (large-v3 shifts them: :mod:`arabicpeft.whisper_tokens`)."""

    family = "whisper"
    exports = ("ct2",)  # CTranslate2 (faster-whisper)
    task = "transcribe"
    decoder_only = False  # the transcript is decoded from the encoder's output, not after a prompt in input_ids
    towers = {"encoder": "model.encoder.layers", "decoder": "model.decoder.layers"}  # adapter_placement's
    # LoRA target presets, named after the Linear layers of transformers' Whisper
    lora_targets = {
        "qv": ["q_proj", "v_proj"],  # the project we replace, and the LoRA paper's default
        "qkvo": ["q_proj", "k_proj", "v_proj", "out_proj"],
        "all-linear": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
    }
    feedforward = ("fc1", "fc2")  # the feed-forward blocks' Linear layers (IA3 scales their inputs)
    # Layers kept at full precision on an int8/nf4 base (bitsandbytes' llm_int8_skip_modules); empty: transformers'
    # default, which keeps the output layer (proj_out). The convolutional front end (conv1, conv2: Conv1d) is never
    # quantized (bitsandbytes replaces Linear layers only).
    unquantized: tuple[str, ...] = ()

    def load_model(self, path, *, dtype=None, quantization_config=None, device_map=None):
        """The model in ``path`` (a folder or hub id) for training or inference, weights at ``dtype``; OSError when
        transformers cannot read it. Its encoder positions are fixed sinusoids (a buffer in OpenAI's model), but
        transformers 5's from_pretrained hands them back trainable: frozen here, or full fine-tuning trains them."""
        from transformers import WhisperForConditionalGeneration

        model = WhisperForConditionalGeneration.from_pretrained(
            path, dtype=dtype, quantization_config=quantization_config, device_map=device_map)
        model.model.encoder.embed_positions.requires_grad_(False)
        return model

    def load_processor(self, path, window_seconds: Optional[int] = None):
        """The processor in ``path`` (a model, adapter or CTranslate2 folder, or a hub id), its tokenizer prefix
        Arabic/transcribe/no timestamps. ``window_seconds``: a log-mel window of that many seconds (the features of
        an encoder cut by :meth:`cut_window`, which CTranslate2 takes as they are), else the extractor's own."""
        from transformers import WhisperProcessor

        processor = WhisperProcessor.from_pretrained(path)
        processor.tokenizer.set_prefix_tokens(language=LANGUAGE, task=self.task, predict_timestamps=False)
        if window_seconds:
            processor.feature_extractor = self._window_extractor(processor.feature_extractor, int(window_seconds))
        return processor

    def set_generation(self, model, max_length: Optional[int]) -> None:
        """Force Arabic and transcription in ``model.generation_config``; ``max_length``: tokens (None: the limit)."""
        gen = model.generation_config
        gen.language, gen.task = LANGUAGE, self.task
        gen.forced_decoder_ids = None  # deprecated; language/task above are the current way
        # Whisper's generate counts max_length after the prompt and caps it at max_target_positions.
        gen.max_length = max_length or model.config.max_target_positions

    def feature_size(self, config) -> int:
        """Mel bins of the log-mel the model takes (80; large-v3: 128), from its config (a transformers config, or
        the dict of its ``config.json``)."""
        return int(config["num_mel_bins"] if isinstance(config, dict) else config.num_mel_bins)

    def label_layout(self, reference: str) -> dict:
        """The ids the tokenizer of a model folder or hub id gives the label tokens
        (:func:`arabicpeft.whisper_tokens.of_files`: its tokenizer.json only); OSError when it cannot be read."""
        return whisper_tokens.of_files(reference)

    def cut_window(self, model, processor, seconds: int) -> None:
        """Shrink the encoder window to ``seconds`` (in place, model and feature extractor alike): the positional
        embeddings are sliced, the rest is unchanged (CPU training ~4x faster). Valid only when every clip is
        shorter and inference cuts alike. ValueError for a window longer than the model's or not whole seconds."""
        from torch import nn

        if int(seconds) != seconds or seconds <= 0:
            raise ValueError(f"encoder_seconds must be a whole number of seconds, got {seconds}.")
        extractor = processor.feature_extractor
        frames = int(seconds) * extractor.sampling_rate // extractor.hop_length
        positions = frames // 2  # the encoder's two convolutions halve the frame rate once
        encoder = model.model.encoder
        table = encoder.embed_positions
        if positions > table.num_embeddings:
            raise ValueError(f"encoder_seconds={seconds} exceeds this model's window "
                             f"({table.num_embeddings * 2 * extractor.hop_length // extractor.sampling_rate} s).")
        if positions < table.num_embeddings:
            cut = nn.Embedding(positions, table.embedding_dim)
            cut.weight.data = table.weight.data[:positions].clone()
            cut.requires_grad_(False)
            encoder.embed_positions = cut
            encoder.max_source_positions = positions
            model.config.max_source_positions = positions
        processor.feature_extractor = self._window_extractor(extractor, int(seconds))

    @staticmethod
    def _window_extractor(extractor, seconds: int):
        """``extractor`` with a log-mel window of ``seconds`` (``seconds * 100`` frames), otherwise the same."""
        from transformers import WhisperFeatureExtractor

        return WhisperFeatureExtractor(
            feature_size=extractor.feature_size, sampling_rate=extractor.sampling_rate,
            hop_length=extractor.hop_length, chunk_length=int(seconds), n_fft=extractor.n_fft,
            padding_value=extractor.padding_value)

    target_modules = placement.target_modules  # lora_targets on adapter_placement: target_modules(cfg)

    def labels(self, processor, text: str) -> list[int]:
        """Label ids of the transcript ``text``: prefix, text tokens, ``<|endoftext|>`` (as the otozz sets')."""
        return _text_labels(processor.tokenizer, text)

    def collator(self, processor, model=None, *, training: bool = False, feature_device: str = "auto",
                 label_tokens: Optional[str] = None) -> Callable:
        """records -> batch (:class:`WhisperCollator`; ``label_tokens``: the layout of stored labels, re-made for
        the model's tokenizer when it differs); ``training``: with ``decoder_input_ids`` too, made from the labels
        as ``model`` makes them (the Trainer's batches)."""
        start = (model.config.decoder_start_token_id if model is not None
                 else processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>"))
        collate = WhisperCollator(processor, start, feature_device, label_tokens)
        return _WithDecoderInputs(collate, model.config.pad_token_id, start) if training else collate

    def audio_inputs(self, processor, clips: list) -> dict:
        """Model inputs of 16 kHz ``clips`` (each at most one window): ``input_features`` (batch, mel bins,
        frames), float32, on the CPU."""
        features = processor.feature_extractor(clips, sampling_rate=audio_lib.SAMPLE_RATE, return_tensors="pt")
        return {"input_features": features.input_features}

    def seconds(self, processor, inputs: dict) -> np.ndarray:
        """Seconds of audio in each row of a batch's ``input_features`` (batch, mel bins, frames), read off the
        log-mel's padding (:func:`arabicpeft.audio.audio_frames`, ``hop_length`` samples a frame). Shape (batch,)."""
        extractor = processor.feature_extractor
        frames = audio_lib.audio_frames(inputs["input_features"].float().cpu().numpy())
        return frames * extractor.hop_length / extractor.sampling_rate

    def encoder_states(self, model, inputs: dict):
        """(the encoder's last hidden states (batch, frames of 20 ms, d_model), layer-normed, on the model's device;
        None): every row spans the whole window, so which frames hold the clip follows from its seconds."""
        return model.get_encoder()(inputs["input_features"]).last_hidden_state, None

    def generation_budget(self, model, processor, max_new_tokens: Optional[int] = None) -> int:
        """Transcript tokens one greedy decode can produce: ``max_new_tokens``, else the generation config's
        ``max_length`` (Whisper's generate counts it after the 4-token prompt), both capped at the decoder's
        ``max_target_positions`` less the prompt (448 - 4 = 444 for every Whisper size)."""
        cap = model.config.max_target_positions - len(processor.tokenizer.prefix_tokens)
        asked = max_new_tokens if max_new_tokens is not None else model.generation_config.max_length
        return min(int(asked), cap) if asked else cap

    def decoding_options(self, model, processor, suppress: str = "precomputed", num_beams: int = 1) -> dict:
        """The keyword arguments of every ``generate`` call that decodes a transcript (evaluation, transcription
        and the adapter bank alike): Arabic and transcribe forced, greedy unless ``num_beams``; ``suppress``:
        "precomputed" (:class:`SuppressTokens`, timestamp tokens too) or "transformers" (its own processors, slower;
        timestamps allowed). Transcripts carry no timestamps (as the labels), and Whisper's ``generate`` takes a
        timestamp token as a segment's end and decodes the rest again, shrinking the batch (breaking peft's
        ``adapter_names``). Raises ValueError for another ``suppress``."""
        from transformers import LogitsProcessorList

        if suppress not in SUPPRESS_PROCESSORS:
            raise ValueError(f"suppress={suppress!r}: choose one of {', '.join(SUPPRESS_PROCESSORS)}.")
        options = dict(language=LANGUAGE, task=self.task, num_beams=num_beams, do_sample=False)
        if suppress == "precomputed":
            gen = model.generation_config
            options.update(suppress_tokens=None, begin_suppress_tokens=None, logits_processor=LogitsProcessorList(
                [SuppressTokens(gen.suppress_tokens, gen.begin_suppress_tokens, self.timestamps_from(processor))]))
        return options

    def generate(self, model, inputs: dict, max_new_tokens: int, options: dict, **kwargs):
        """The new token ids (batch, tokens) of one ``generate`` on ``inputs`` (model inputs on its device): at
        most ``max_new_tokens``, each row ending at ``<|endoftext|>`` and padded with it. ``options``:
        :meth:`decoding_options`; ``kwargs``: more ``generate`` arguments (stopping criteria, ``adapter_names``)."""
        return model.generate(**inputs, max_length=int(max_new_tokens), **options, **kwargs)

    def decode(self, processor, ids) -> list[str]:  # transcripts of token ids (batch, tokens), specials skipped
        return processor.tokenizer.batch_decode(ids, skip_special_tokens=True)

    def label_positions(self, model) -> int:  # the most label tokens one record may hold (448: every size)
        return int(model.config.max_target_positions)

    def mixes_adapters(self, model) -> bool:  # peft's per-utterance adapter_names reach every layer's batch
        return True

    def prompt_ids(self, processor) -> list[int]:
        """The decoder prompt ``<|startoftranscript|><|ar|><|transcribe|><|notimestamps|>`` as token ids (what
        CTranslate2's ``Whisper.generate`` is given)."""
        return processor.tokenizer.convert_tokens_to_ids(
            ["<|startoftranscript|>", f"<|{LANGUAGE}|>", f"<|{self.task}|>", "<|notimestamps|>"])

    def timestamps_from(self, processor) -> int:
        """The id of ``<|0.00|>``, the first of Whisper's timestamp tokens (they follow ``<|notimestamps|>``)."""
        return processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1

    def card_snippet(self, adapter: bool) -> tuple[list[str], list[str]]:
        """(imports, code) of a model card's Python snippet that transcribes ``AUDIO`` with plain transformers:
        the adapter in ``MODEL_DIR`` on ``BASE_MODEL`` (peft) when ``adapter``, else the model in ``MODEL_DIR``."""
        imports = ["import librosa", *(["from peft import PeftModel"] if adapter else []),
                   "from transformers import WhisperForConditionalGeneration, WhisperProcessor"]
        if adapter:
            load = ["model = PeftModel.from_pretrained(WhisperForConditionalGeneration.from_pretrained(BASE_MODEL), "
                    "MODEL_DIR).eval()",
                    "processor = WhisperProcessor.from_pretrained(BASE_MODEL)  # the base's full log-mel window"]
        else:
            load = ["model = WhisperForConditionalGeneration.from_pretrained(MODEL_DIR).eval()",
                    "processor = WhisperProcessor.from_pretrained(MODEL_DIR)"]
        decode = ["audio, rate = librosa.load(AUDIO, sr=16000)  # librosa reads and resamples any audio file",
                  'features = processor(audio, sampling_rate=rate, return_tensors="pt").input_features',
                  f'ids = model.generate(input_features=features, language="{LANGUAGE}", task="{self.task}")',
                  "print(processor.batch_decode(ids, skip_special_tokens=True)[0])"]
        return imports, load + decode

    def tokenizer(self, tokenizer_json, special_tokens: list[str], model_max_length: int, timestamps: int = 1501):
        """The multilingual Whisper tokenizer from faster-whisper's ``tokenizer.json`` plus what it lacks:
        ``special_tokens`` registered as such (the first timestamp id follows the last special id) and the
        ``timestamps`` tokens ``<|0.00|>`` ... ``<|30.00|>``."""
        from tokenizers import AddedToken
        from transformers import WhisperTokenizer

        tok = WhisperTokenizer(tokenizer_file=str(tokenizer_json), extra_special_tokens=special_tokens,
                               pad_token="<|endoftext|>", model_max_length=model_max_length)
        tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(timestamps)])
        return tok

    def build(self, out_dir, config: dict, generation_config, tokenizer, chunk_seconds: int = 30,
              state_dict: Optional[dict] = None, seed: int = 0) -> int:
        """Save into ``out_dir`` a Whisper of ``config`` (``WhisperConfig`` fields) with ``state_dict``'s weights or
        seeded random ones (the caller's RNG untouched), ``generation_config`` (its suppression lists copied to the
        model config: no English-only default survives), ``tokenizer`` and a ``chunk_seconds`` feature extractor.
        Returns the parameter count; ValueError when the weight names do not match transformers' Whisper."""
        import torch
        from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                                  WhisperProcessor)

        model_config = WhisperConfig(**config)
        model_config.suppress_tokens = generation_config.suppress_tokens
        model_config.begin_suppress_tokens = generation_config.begin_suppress_tokens
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = WhisperForConditionalGeneration(model_config)
        if state_dict is not None:
            missing, unexpected = model.load_state_dict(state_dict, strict=False)
            if unexpected or set(missing) - {"proj_out.weight"}:  # proj_out is tied to embed_tokens
                raise ValueError(f"weight names do not match transformers' Whisper: missing {missing}, "
                                 f"unexpected {unexpected}")
        model.generation_config = generation_config
        model.save_pretrained(out_dir)
        extractor = WhisperFeatureExtractor(feature_size=model_config.num_mel_bins, chunk_length=chunk_seconds)
        WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out_dir)
        extractor.save_pretrained(out_dir)  # preprocessor_config.json too, for tools that read only it
        return sum(p.numel() for p in model.parameters())
