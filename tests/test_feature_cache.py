"""The compact log-mel cache: bitwise the same model inputs, read by the training/evaluation data path."""

import json

import datasets
import numpy as np
import pytest
from conftest import SOT, otozz_labels
from transformers import WhisperFeatureExtractor

from arabicpeft import cli, feature_cache
from arabicpeft.config import ExperimentConfig
from arabicpeft.backbones import WhisperCollator
from arabicpeft.caching import build_feature_cache
from arabicpeft.data import load_splits, load_test_sets
from arabicpeft.records import record_key
from arabicpeft.feature_cache import FeatureCache, input_features


def otozz_records(tokenizer) -> dict:
    """Otozz-shaped records (80 x 3000 float32 log-mel of Whisper's extractor + otozz labels) of clips that
    test the edges: speech-like noise of 0.5-6 s, a clip filling the whole 30 s window (nothing to trim), a
    clip whose own end is digital silence, and a very quiet clip (log-mel max below -2: the padding sits at the
    1e-10 floor, not at max - 8)."""
    rng = np.random.default_rng(7)
    extractor = WhisperFeatureExtractor()
    clips = [rng.normal(0, 0.1, int(s * 16_000)).astype(np.float32) for s in (0.5, 1.7, 3.2, 6.0)]
    clips.append(rng.normal(0, 0.1, 30 * 16_000).astype(np.float32))
    clips.append(np.concatenate([rng.normal(0, 0.1, 16_000), np.zeros(32_000)]).astype(np.float32))
    clips.append(rng.normal(0, 1e-6, 16_000).astype(np.float32))
    features = [extractor(c, sampling_rate=16_000, return_tensors="np").input_features[0] for c in clips]
    labels = [otozz_labels(tokenizer, f"جملة رقم {i}") for i in range(len(clips))]
    return {"input_features": features, "labels": labels}


def test_trim_keeps_only_the_frames_before_the_padding_and_restores_them_bitwise(processor30):
    records = otozz_records(processor30.tokenizer)
    kept = [feature_cache._trim(f)[0].shape[1] for f in records["input_features"]]
    # audio of n samples reaches frame ceil(n / 160) at most; the full clip keeps all 3000 frames
    assert all(k <= int(np.ceil(s * 100)) + 2 for k, s in zip(kept[:4], (0.5, 1.7, 3.2, 6.0)))
    assert kept[4] == 3000
    assert kept[5] <= 102  # the silent second and a half after the audio is padding too
    quiet = records["input_features"][6]
    assert feature_cache._trim(quiet)[1] == np.float32(-1.5)  # (-10 + 4) / 4: the 1e-10 floor, not max - 2
    assert quiet.max() - np.float32(2) != np.float32(-1.5)
    for features, labels in zip(records["input_features"], records["labels"]):
        for dtype in feature_cache.DTYPES:
            rebuilt = input_features(feature_cache._compact(features, labels, dtype))
            assert rebuilt.dtype == np.float32 and rebuilt.shape == (80, 3000)
            if dtype == "float32":
                assert np.array_equal(rebuilt.view(np.uint32), features.view(np.uint32))  # bitwise
            else:
                assert np.abs(rebuilt - features).max() <= 2e-3  # float16 of values in [-1.5, 1.5]


def test_signed_zero_padding_is_restored_bitwise():
    features = np.full((80, 3000), -0.0, dtype=np.float32)
    features[:, :10] = 0.0  # +0.0 frames look equal to the -0.0 padding, but are not the same bits
    kept, pad = feature_cache._trim(features)
    assert kept.shape[1] == 10 and np.signbit(pad)
    assert np.array_equal(input_features(feature_cache._compact(features, [1])).view(np.uint32),
                          features.view(np.uint32))


def _fake_hub(monkeypatch, root, calls):
    def fake_load_dataset(repo_id, split, streaming, revision):
        calls.append((repo_id, streaming))
        ds = datasets.load_from_disk(str(root / repo_id.split("/")[1]))
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.setattr("arabicpeft.sources.hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr("arabicpeft.sources.dataset_revision", lambda repo_id: "0123abc")
    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_otozz_hub_set_is_streamed_once_into_the_cache_and_read_back_bitwise(tmp_path, monkeypatch, processor30):
    records = otozz_records(processor30.tokenizer)
    hub = tmp_path / "hub"
    # 63 distinct records (the 7 clips, each under 9 transcripts): the streamed path splits by a seeded hash of each
    # record's content, and with 63 keys the chance that none lands on the 20% validation side is 0.8**63 < 1e-6,
    # whatever the features' last bits (21 records of 7 distinct keys left it to luck: 0.8**7 = 21%)
    n = 9 * len(records["labels"])
    train = {"input_features": [records["input_features"][i % 7] for i in range(n)],
             "labels": [otozz_labels(processor30.tokenizer, f"جملة رقم {i} من {n}") for i in range(n)]}
    datasets.Dataset.from_dict(train).save_to_disk(hub / "egyptian_train_set")
    datasets.Dataset.from_dict(records).save_to_disk(hub / "egyptian_test_set")
    calls = []
    _fake_hub(monkeypatch, hub, calls)
    cache = tmp_path / "cache"
    cfg = ExperimentConfig(dialect="egyptian", source="hub", feature_cache=str(cache))
    built = build_feature_cache(cfg, log=lambda m: None)
    assert calls == [("otozz/egyptian_train_set", True), ("otozz/egyptian_test_set", True)]  # streamed, once
    meta = built["egyptian/train"]
    assert meta["records"] == n and meta["hub_revision"] == "0123abc" and meta["lossless"]
    # every cached record rebuilds the otozz features bitwise, with the same labels and the same record key
    ds, _ = FeatureCache(cache).open("egyptian", "train")
    for cached, features, labels in zip(ds.with_format("numpy"), train["input_features"], train["labels"]):
        assert np.array_equal(input_features(cached).view(np.uint32), features.view(np.uint32))
        assert cached["labels"].tolist() == labels
        assert record_key(cached) == record_key({"input_features": features, "labels": labels})
    # the data path: the same splits and the same collated batches as from the hub itself
    direct = load_splits(ExperimentConfig(dialect="egyptian", source="hub"), processor30.tokenizer)
    cached = load_splits(cfg, processor30.tokenizer)
    assert calls[2:] == [("otozz/egyptian_train_set", False), ("otozz/egyptian_test_set", False)]  # direct only
    collate = WhisperCollator(processor30, SOT)
    for a, b in [(direct.train, cached.train), (direct.validation, cached.validation),
                 (direct.test["egyptian"], cached.test["egyptian"])]:
        assert len(a) == len(b)
        x, y = collate(list(a)), collate(list(b))
        assert np.array_equal(x["input_features"].numpy().view(np.uint32), y["input_features"].numpy().view(np.uint32))
        assert np.array_equal(x["labels"].numpy(), y["labels"].numpy())
    assert cached.report["feature_cache"]["egyptian/train"]["ratio_vs_arrow_float32"] > 1
    assert cached.report["train_pool"]["hub_revisions"] == ["0123abc"]
    assert "feature cache" in cached.report["feature_path"]
    # a streamed read of the cache puts each record on the same side of the hash split as the streamed hub
    streamed = load_splits(ExperimentConfig(dialect="egyptian", source="hub", streaming=True, max_eval_samples=n),
                           processor30.tokenizer)
    streamed_cache = load_splits(ExperimentConfig(dialect="egyptian", source="hub", streaming=True,
                                                  max_eval_samples=n, feature_cache=str(cache)), processor30.tokenizer)
    assert [x.tolist() for x in streamed.validation["labels"]] == [x.tolist() for x in streamed_cache.validation["labels"]]


def test_float16_cache_halves_the_frames_and_is_refused_where_float32_was_built(tmp_path, processor30):
    records = otozz_records(processor30.tokenizer)
    pairs = list(zip(records["input_features"], records["labels"]))
    full = FeatureCache(tmp_path / "a").write("egyptian", "test", iter(pairs), "float32")
    half = FeatureCache(tmp_path / "b").write("egyptian", "test", iter(pairs), "float16")
    assert full.kept_frames == half.kept_frames and full.input_values == 7 * 80 * 3000
    values = full.kept_frames * 80
    assert full.bytes - half.bytes == pytest.approx(2 * values, abs=1024)  # 2 bytes a value saved, nothing else
    cfg = ExperimentConfig(dialect="egyptian", source="local", data_path=str(tmp_path), test_sets=["egyptian"],
                           feature_cache=str(tmp_path / "b"))
    with pytest.raises(feature_cache.CacheError, match="built from source None, this run reads source local"):
        load_test_sets(cfg, processor30.tokenizer)
    with pytest.raises(feature_cache.CacheError, match="cached as float32, this run asks for float16"):
        build_feature_cache(ExperimentConfig(dialect="egyptian", source="local", data_path=str(tmp_path),
                                             feature_cache=str(tmp_path / "a"), feature_cache_dtype="float16"),
                            splits=("test",), log=lambda m: None)
    with pytest.raises(feature_cache.CacheError, match="holds no finished egyptian train split.*arabicpeft cache"):
        FeatureCache(tmp_path / "a").open("egyptian", "train")


def test_cache_command_on_the_sample_set_gives_the_collators_features_bitwise(tmp_path, tiny_processor, capsys):
    """Every record of one dialect of the sample set (audio): the log-mel computed once into the cache is
    bitwise what the collator computes on the fly, through the whole data path (train, validation, test)."""
    out = tmp_path / "cache"
    cli.main(["cache", "--source", "sample", "--dialect", "egyptian", "--model", "tiny-random", "--output-dir", str(out)])
    summary = json.loads((out / "feature_cache.json").read_text(encoding="utf-8"))
    assert capsys.readouterr().out.strip().splitlines()[-1] == str((out / "feature_cache.json").resolve())
    assert summary["splits"]["egyptian/train"]["records"] == 60 and summary["splits"]["egyptian/test"]["records"] == 12
    assert summary["splits"]["egyptian/test"]["feature_extractor"]["chunk_length"] == 8  # the sample set's window
    cfg = ExperimentConfig(dialect="egyptian", source="sample", encoder_seconds=8)
    direct = load_splits(cfg, tiny_processor.tokenizer, max_seconds=8)
    cached = load_splits(ExperimentConfig(**{**cfg.to_dict(), "feature_cache": str(out)}), tiny_processor.tokenizer,
                         max_seconds=8)
    assert direct.format == "audio" and cached.format == "features"
    collate = WhisperCollator(tiny_processor, SOT)
    n = 0
    for a, b in [(direct.train, cached.train), (direct.validation, cached.validation),
                 (direct.test["egyptian"], cached.test["egyptian"])]:
        for ra, rb in zip(a, b):
            fa, la = collate.features_and_labels(ra)
            fb, lb = collate.features_and_labels(rb)
            assert np.array_equal(fa.view(np.uint32), fb.view(np.uint32)) and la == list(lb)
            n += 1
    assert n == 72 == len(direct.train) + len(direct.validation) + len(direct.test["egyptian"])


def test_a_missing_split_suggests_a_cache_command_that_parses(tmp_path):
    import shlex

    with pytest.raises(feature_cache.CacheError) as caught:
        FeatureCache(tmp_path / "c").open("gulf", "train")
    todo = caught.value.todo
    assert todo.startswith("build it: python -m arabicpeft cache ")
    command = shlex.split(todo.removeprefix("build it: python -m arabicpeft ").split(" (with")[0])
    args = cli._build_parser().parse_args(command)
    assert (args.dialect, args.splits, args.output_dir) == ("gulf", ["train"], str(tmp_path / "c"))


@pytest.mark.parametrize("damage, broken", [
    (lambda split: (split / "cache.json").write_text("{oops"), "cache.json"),
    (lambda split: (split / feature_cache.DATA_FILE).write_bytes((split / feature_cache.DATA_FILE).read_bytes()[:1000]),
     feature_cache.DATA_FILE),
    (lambda split: (split / feature_cache.DATA_FILE).unlink(), feature_cache.DATA_FILE),
], ids=["bad cache.json", "truncated arrow", "arrow missing"])
def test_a_broken_split_names_its_file_and_says_to_rebuild(damage, broken, tmp_path, processor30):
    records = otozz_records(processor30.tokenizer)
    cache = FeatureCache(tmp_path)
    cache.write("egyptian", "test", zip(records["input_features"], records["labels"]))
    split = cache.split_dir("egyptian", "test")
    damage(split)
    with pytest.raises(feature_cache.CacheError) as caught:
        cache.open("egyptian", "test")
    assert caught.value.what.startswith(f"the feature cache file {split / broken} is missing or broken (")
    assert caught.value.todo == f"delete that split folder ({split}) and build it again with python -m arabicpeft cache."
