"""Evaluation decoding: each utterance bounded by what its audio can hold, batches of
similar duration, suppressed tokens from a precomputed mask. Transcripts of every utterance that ends by itself
are identical to plain batched ``generate`` in dataset order; a looping one is
that path's transcript cut at its limit.

Then scoring: empty test transcripts are scored, not filtered; a reference longer than the generation
budget is counted and warned about."""

import warnings

import datasets
import numpy as np
import pytest
import torch
from conftest import EOT, PREFIX, _local, write_audio_manifest
from torch.utils.data import DataLoader
from transformers import WhisperForConditionalGeneration
from transformers.generation.logits_process import SuppressTokensAtBeginLogitsProcessor, SuppressTokensLogitsProcessor
from transformers.modeling_outputs import Seq2SeqLMOutput

from arabicpeft import audio as audio_lib
from arabicpeft.config import ExperimentConfig
from arabicpeft.backbones import LANGUAGE, SuppressTokens, Whisper, WhisperCollator
from arabicpeft.data import load_test_sets
from arabicpeft.records import _check_labels
from arabicpeft.dialects import VARIETIES
from arabicpeft.evaluate import (_MIN_NEW_TOKENS, decode_limits, decoding_record,
                                 transcribe)
from arabicpeft.metrics import score
from arabicpeft.model import load_model


def _plain_generate(model, processor, ds, batch_size):
    """Plain batched decoding: batches in dataset order, one ``generate`` each, transformers' own
    processors, the generation budget only. Returns the new token ids of each record (up to <|endoftext|>)."""
    eos = processor.tokenizer.eos_token_id
    out = []
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=WhisperCollator(processor, model.config.decoder_start_token_id))
    for batch in loader:
        with torch.no_grad():
            ids = model.generate(input_features=batch["input_features"], language=LANGUAGE, task=Whisper.task, num_beams=1,
                                 do_sample=False)
        out += [row[: int((row != eos).cumprod(0).sum())].tolist() for row in ids]
    return out


def _check_against_plain(model, processor, ds, batch_size):
    """Transcripts of :func:`transcribe` vs :func:`_plain_generate`: each the plain path's first ``limit``
    tokens (all of them when it ended by itself); returns (plain token ids, limits, at_limit flags)."""
    tok = processor.tokenizer
    plain = _plain_generate(model, processor, ds, batch_size)
    reached, used = [], []
    refs, hyps = transcribe(model, processor, ds, batch_size=batch_size, at_limit=reached, limits=used)
    extractor = processor.feature_extractor
    collator = WhisperCollator(processor, model.config.decoder_start_token_id)
    seconds = [audio_lib.audio_frames(collator.features_and_labels(r)[0]) * extractor.hop_length / extractor.sampling_rate
               for r in ds]
    limits = decode_limits(seconds, Whisper().generation_budget(model, processor)).tolist()
    assert used == limits
    assert refs == tok.batch_decode([tok(t).input_ids for t in ds["text"]], skip_special_tokens=True)  # input order
    for ids, limit, hyp, hit in zip(plain, limits, hyps, reached):
        assert hyp == tok.decode(ids[:limit], skip_special_tokens=True)
        assert hit == (len(ids) >= limit)
    return plain, limits, reached


def test_decode_limits_read_the_audio_and_the_budget_alone():
    limits = decode_limits([0.0, 1.0, 2.5, 29.0], budget=300, tokens_per_second=20)
    assert limits.tolist() == [_MIN_NEW_TOKENS, _MIN_NEW_TOKENS + 20, _MIN_NEW_TOKENS + 50, 300]
    assert decode_limits([1.0], budget=225, tokens_per_second=None).tolist() == [225]
    record = decoding_record()
    assert record["min_new_tokens"] == _MIN_NEW_TOKENS and decoding_record(None)["tokens_per_second"] is None
    assert record["limit_per_utterance"] == f"min(generation budget, {_MIN_NEW_TOKENS} + ceil(20 x audio seconds))"
    assert "reference" not in record["limit_per_utterance"] and "not the transcript" in record["limit_reads"]


def test_precomputed_suppression_gives_transformers_scores():
    generator = torch.Generator().manual_seed(0)
    suppress, begin = [1, 2, 7, 50360, 50361], [220, 50257]
    ours = SuppressTokens(suppress, begin)
    ours.set_begin_index(4)
    stock = [SuppressTokensLogitsProcessor(suppress), SuppressTokensAtBeginLogitsProcessor(begin, begin_index=4)]
    for length in (4, 5, 9):  # the first generated step, then later ones
        scores = torch.randn(3, 51865, generator=generator)
        ids = torch.zeros(3, length, dtype=torch.long)
        expected = scores
        for proc in stock:
            expected = proc(ids, expected)
        assert torch.equal(ours(ids, scores.clone()), expected)


def test_tiny_random_transcripts_are_the_plain_ones_cut_at_their_limits(tiny_processor):
    """The random model loops on every clip: each transcript is the plain path's cut at its limit, in input order,
    with batches that mix durations (records sorted by duration inside the batch window)."""
    model = load_model("tiny-random").model
    model.generation_config.max_length = 100  # the budget; every limit is below it (16 + 20 tokens/s x 4 s at most)
    processor = tiny_processor
    cfg = ExperimentConfig(dialect="all", test_sets=list(VARIETIES), source="sample", max_test_samples=2)
    tests = load_test_sets(cfg, processor.tokenizer, max_seconds=processor.feature_extractor.chunk_length)[0]
    ds = datasets.concatenate_datasets(list(tests.values()))
    plain, limits, reached = _check_against_plain(model, processor, ds, batch_size=4)
    assert any(reached) and min(limits) < max(limits)


@pytest.fixture(scope="module")
def base():
    loaded = load_model("whisper-base")
    loaded.cut_window(8)  # the demo's window (every sample clip is shorter): ~4x faster
    # a smaller budget for the plain path's looping decodes keeps the test short; each limit is still below it
    loaded.model.generation_config.max_length = 120
    return loaded.model, loaded.processor


# Sample test clips at the 8 s window: whisper-base loops on the first three (to the budget), ends by itself on the
# others (of all 72 it loops on 5: these three, egyptian-te05-v5 and maghrebi-te06-v1).
LOOPING = ("egyptian-te03-v5", "iraqi-te02-v1", "msa-te01-v5")
ENDING = ("egyptian-te01-v1", "gulf-te03-v1", "iraqi-te04-v5", "maghrebi-te06-v5")


def test_whisper_base_transcripts_are_todays_unless_they_loop(base):
    model, processor = base
    cfg = ExperimentConfig(dialect="all", test_sets=list(VARIETIES), source="sample")
    tests = load_test_sets(cfg, processor.tokenizer, max_seconds=processor.feature_extractor.chunk_length)[0]
    ds = datasets.concatenate_datasets(list(tests.values()))
    ds = ds.select([list(ds["id"]).index(i) for i in ENDING[:2] + LOOPING + ENDING[2:]])
    plain, limits, reached = _check_against_plain(model, processor, ds, batch_size=4)
    assert reached == [i in LOOPING for i in ds["id"]]
    assert all(len(ids) >= 120 for ids, hit in zip(plain, reached) if hit)  # they ran to the budget before


@pytest.fixture(scope="module")
def tiny_model():
    from arabicpeft.model import _load_base

    model, processor = _load_base(ExperimentConfig(model="tiny-random", generation_max_length=6))
    return model, processor


def test_empty_test_transcripts_are_scored_not_filtered(tmp_path, tiny_model):
    """A test clip with an empty transcript is kept; its hypothesis words are insertions and
    empty_references counts it. Training keeps filtering it (counted)."""
    from arabicpeft.evaluate import evaluate_sets

    model, processor = tiny_model
    rows = [{"seconds": 1.0, "text": "مرحبا"}, {"seconds": 1.5, "text": ""}, {"seconds": 2.0, "text": "نعم"}]
    write_audio_manifest(tmp_path, rows, "test")
    tests, report, _ = load_test_sets(_local(tmp_path), processor.tokenizer, max_seconds=8)
    assert len(tests["gulf"]) == 3 and report["gulf"]["empty_transcript_scored"] == 1
    assert report["gulf"]["filtered"]["empty_transcript"] == 0
    metrics, utts = evaluate_sets(model, processor, tests)
    raw = metrics["gulf"]["raw"]
    assert raw["n_utterances"] == 3 and raw["empty_references"] == 1 and raw["ref_words"] == 2
    silent = utts[(utts.scheme == "raw") & (utts.utt_index == 1)].iloc[0]
    assert silent.ref_words == 0 and silent.word_errors == len(silent.hypothesis.split()) > 0
    assert raw["word_errors"] == utts[utts.scheme == "raw"].word_errors.sum()
    # the same rule without a model
    assert score(["", "a b"], ["x y", "a b"])["word_errors"] == 2


class Parrot(WhisperForConditionalGeneration):
    """Says its ``target`` ids whatever it hears: a model that produces a given reference, through the real
    Whisper generate loop (prompt, suppressions, budget)."""

    target: list = []

    def forward(self, *args, decoder_input_ids=None, **kwargs):
        step = decoder_input_ids.shape[1]  # no cache: the whole sequence so far
        logits = torch.full((decoder_input_ids.shape[0], 1, self.config.vocab_size), -1e9)
        logits[:, -1, self.target[step] if step < len(self.target) else EOT] = 0.0
        return Seq2SeqLMOutput(logits=logits)


def _parrot(base, target):
    model = Parrot(base.config)
    model.generation_config = base.generation_config
    model.generation_config.use_cache = False
    Parrot.target = target
    return model


def _features_of(seconds: int) -> np.ndarray:
    """Log-mel features of tiny-random's 8 s window: ``seconds`` of (random) audio, then one padding value."""
    features = np.random.default_rng(0).normal(size=(80, 800)).astype(np.float32)
    features[:, seconds * 100:] = -0.5
    return features


def test_a_long_reference_fits_the_default_budget_and_is_counted_under_the_papers(tiny_model):
    """A kept 294-token reference is matched in full under the default budget; under the paper's 225
    it is cut, counted in references_over_budget, and a warning says so. Decoded to the budget alone
    (tokens_per_second=None): 289 tokens are more than 8 s of audio may hold (see the next test)."""
    from arabicpeft.config import PAPER_GENERATION_MAX_LENGTH
    from arabicpeft.evaluate import evaluate_sets

    base, processor = tiny_model
    tok = processor.tokenizer
    labels = PREFIX + tok.encode(" ".join(["كلمة"] * 200), add_special_tokens=False)[:289] + [EOT]
    assert len(labels) == 294
    _check_labels(labels, tok, max_positions=base.config.max_target_positions)  # admitted
    model = _parrot(base, labels)
    ds = datasets.Dataset.from_dict({"input_features": [_features_of(8)], "labels": [labels]})
    test_sets = {"long": ds.with_format("numpy")}

    model.generation_config.max_length = base.config.max_target_positions  # the default (None -> model's limit)
    assert Whisper().generation_budget(model, processor) == 444
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no budget warning
        metrics, _ = evaluate_sets(model, processor, test_sets, tokens_per_second=None)
    assert metrics["long"]["raw"]["word_errors"] == 0 and metrics["long"]["raw"]["references_over_budget"] == 0

    model.generation_config.max_length = PAPER_GENERATION_MAX_LENGTH
    with pytest.warns(UserWarning, match="1 of 1 references are longer than the generation budget of 225 tokens "
                                         r"\(longest 289\).*Raise generation_max_length \(evaluate --generation-max-length"):
        metrics, _ = evaluate_sets(model, processor, test_sets, tokens_per_second=None)
    assert metrics["long"]["raw"]["references_over_budget"] == 1 and metrics["long"]["raw"]["word_errors"] > 0
    assert metrics["long"]["raw"]["generation_budget_tokens"] == 225


def test_the_bound_reads_the_audio_not_the_reference(tiny_model):
    """The same 289-token reference on 8 s of audio is cut at that audio's limit (16 + 20 x 8 = 176 tokens), though
    the budget (444) would hold it: the test transcript is not read while decoding. It is counted
    (references_over_limit) and warned about, and the hypothesis is the reference's first 176 tokens."""
    from arabicpeft.evaluate import evaluate_sets

    base, processor = tiny_model
    tok = processor.tokenizer
    text = tok.encode(" ".join(["كلمة"] * 200), add_special_tokens=False)[:289]
    model = _parrot(base, PREFIX + text + [EOT])
    model.generation_config.max_length = base.config.max_target_positions
    ds = datasets.Dataset.from_dict({"input_features": [_features_of(8)], "labels": [PREFIX + text + [EOT]]})
    with pytest.warns(UserWarning, match=r"1 of 1 references are longer than their per-utterance limit \(16 \+ 20 "
                                         r"tokens per second of audio\)"):
        metrics, rows = evaluate_sets(model, processor, {"short": ds.with_format("numpy")})
    raw = metrics["short"]["raw"]
    assert raw["references_over_budget"] == 0 and raw["references_over_limit"] == 1 and raw["hypotheses_at_limit"] == 1
    assert rows[rows.scheme == "raw"].hypothesis.iloc[0] == tok.decode(text[:_MIN_NEW_TOKENS + 160]).strip()


def test_run_is_the_evaluate_command_from_python(tmp_path):
    """What ``python -m arabicpeft evaluate`` runs, called as a notebook calls it: the same results file."""
    from arabicpeft.errors import UserError
    from arabicpeft.evaluate import run
    from arabicpeft.results import load_runs, read_results

    said = []
    path = run("tiny-random", tmp_path / "eval", test_sets=["gulf", "msa"], source="sample", max_test_samples=2,
               window=6, generation_max_length=10, log=said.append)
    result = read_results(path)
    assert path == tmp_path / "eval" / "results.json" and (tmp_path / "eval" / "utterances.csv").is_file()
    assert (result["kind"], result["run_id"], result["config"]) == ("evaluation", "eval", None) and result["synthetic"]
    assert list(result["metrics"]) == ["gulf", "msa"] and result["metrics_pooled"]["raw"]["n_utterances"] == 4
    assert result["evaluated_model"]["window_seconds"] == 6 and result["evaluated_model"]["kind"] == "base"
    assert {k: result["evaluation"][k] for k in ("window", "window_seconds", "generation_max_length", "source")} == {
        "window": 6, "window_seconds": 6, "generation_max_length": 10, "source": "sample"}
    assert result["provenance"]["generation_budget_tokens"] == 10 and result["provenance"]["decoding"]
    assert said[0] == "Scoring tiny-random (hf) on gulf, msa (sample data), 6 s encoder window."
    assert said[1].startswith("note: the sample data is synthetic")
    assert load_runs(tmp_path).runs["kind"].tolist() == ["evaluation"]
    with pytest.raises(UserError, match="a base model has no training dialect"):
        run("tiny-random", tmp_path / "x", source="sample", log=said.append)
