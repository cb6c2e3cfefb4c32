"""Directory loaders on real folders of real files, against Keras 3 (format="grain", JAX backend),
Pillow, the standard library's wave module and hand-computed expectations."""

import os
import pathlib
import subprocess
import sys
import wave

import grain
import jax
import keras
import numpy as np
import pytest
from PIL import Image

from jkutils.data import (
    audio_dataset_from_directory,
    image_dataset_from_directory,
    process_shard,
    split_dataset,
    text_dataset_from_directory,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = (12, 16)


def _save(path, array, mode=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **kwargs)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two classes (plus a hidden folder and a non-image file Keras ignores): PNG, upper-case
    JPEG, grayscale, RGBA, a palette GIF, nested sub-folders, different sizes."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)

    def pixels(h, w, c=3):
        return rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)

    _save(root / "dogs" / "d0.png", pixels(30, 40))
    _save(root / "dogs" / "d1.JPG", pixels(25, 25), quality=90)
    _save(root / "dogs" / "nested" / "deeper" / "d2.png", pixels(20, 50, 1))
    _save(root / "dogs" / "nested" / "d3.png", pixels(33, 21, 4))
    _save(root / "cats" / "c0.jpeg", pixels(40, 30), quality=80)
    _save(root / "cats" / "c1.png", pixels(17, 19, 4))
    _save(root / "cats" / "c2.gif", pixels(22, 22, 1), mode="L")
    _save(root / "cats" / "sub" / "c3.bmp", pixels(16, 12))
    _save(root / ".hidden" / "h.png", pixels(5, 5))
    (root / "cats" / "notes.txt").write_text("not an image")
    return root


def _keras(directory, **kwargs):
    kwargs.setdefault("verbose", False)
    return keras.utils.image_dataset_from_directory(directory, format="grain", **kwargs)


def _batches(dataset):
    return [jax.tree.map(np.asarray, batch) for batch in dataset]


def _assert_same_batches(ours, expected, atol=1e-2):
    assert len(ours) == len(expected)
    for mine, theirs in zip(ours, expected):
        mine, theirs = jax.tree.leaves(mine), jax.tree.leaves(theirs)
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, atol=atol)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"color_mode": "grayscale", "label_mode": "categorical"},
        {"color_mode": "rgba", "label_mode": "binary", "interpolation": "nearest"},
        {"crop_to_aspect_ratio": True, "interpolation": "bicubic", "label_mode": None},
        {"pad_to_aspect_ratio": True, "batch_size": None},
        {"data_format": "channels_first", "interpolation": "lanczos3", "batch_size": 3},
    ],
)
def test_unshuffled_files_labels_and_float_pixels_equal_keras(photos, kwargs):
    ours = image_dataset_from_directory(
        photos, image_size=SIZE, shuffle=False, dtype="float32", verbose=False, **kwargs
    )
    expected = _keras(photos, image_size=SIZE, shuffle=False, **kwargs)
    assert ours.file_paths == expected.file_paths
    assert ours.class_names == expected.class_names
    if kwargs.get("label_mode", "int") is not None:
        assert ours.class_names == ["cats", "dogs"]
    else:  # without labels Keras lists every file under the folder, hidden folders included
        assert any(".hidden" in path for path in ours.file_paths)
    _assert_same_batches(_batches(ours), _batches(expected))


def test_default_uint8_pixels_are_keras_values_rounded(photos):
    ours = image_dataset_from_directory(photos, image_size=SIZE, shuffle=False, verbose=False)
    ((images, labels),) = _batches(ours)
    ((keras_images, keras_labels),) = _batches(_keras(photos, image_size=SIZE, shuffle=False))
    assert images.dtype == np.uint8 and images.shape == (8, *SIZE, 3)
    assert np.abs(images - keras_images).max() <= 0.5 + 1e-2
    np.testing.assert_array_equal(labels, keras_labels)
    assert labels.dtype == np.int32


def test_labels_are_sub_folder_indices_in_alphanumeric_or_given_order(photos):
    ours = image_dataset_from_directory(
        photos,
        image_size=SIZE,
        shuffle=False,
        verbose=False,
        class_names=["dogs", "cats"],
        batch_size=None,
    )
    names = [pathlib.Path(p).relative_to(photos).parts[0] for p in ours.file_paths]
    assert names == ["dogs"] * 4 + ["cats"] * 4
    assert [int(label) for _, label in ours] == [0] * 4 + [1] * 4
    assert (
        ours.file_paths
        == _keras(photos, image_size=SIZE, shuffle=False, class_names=["dogs", "cats"]).file_paths
    )


def test_explicit_labels_follow_the_sorted_file_paths(photos):
    given = [1, 0, 1, 1, 0, 0, 1, 0, 1]  # the hidden folder counts here
    ours = image_dataset_from_directory(
        photos, labels=given, image_size=SIZE, shuffle=False, verbose=False, batch_size=9
    )
    expected = _keras(photos, labels=given, image_size=SIZE, shuffle=False, batch_size=9)
    assert ours.file_paths == expected.file_paths
    assert ours.class_names == ["0", "1"]
    np.testing.assert_array_equal(ours[0][1], given)


def test_keras_seed_gives_keras_order_split_and_pixels(photos):
    for subset in ("training", "validation"):
        kwargs = dict(image_size=SIZE, batch_size=2, seed=1337, validation_split=0.4, subset=subset)
        ours = image_dataset_from_directory(photos, dtype="float32", verbose=False, **kwargs)
        expected = _keras(photos, **kwargs)
        assert sorted(ours.file_paths) == sorted(expected.file_paths)
        _assert_same_batches(_batches(ours), _batches(expected))


def test_key_split_is_a_partition_and_depends_only_on_the_key(photos):
    def split(seed):
        train, val = image_dataset_from_directory(
            photos,
            image_size=SIZE,
            key=jax.random.key(seed),
            validation_split=0.25,
            subset="both",
            verbose=False,
        )
        return train.file_paths, val.file_paths

    train, val = split(0)
    assert len(val) == int(0.25 * 8) and len(train) == 6
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(_keras(photos, image_size=SIZE, shuffle=False).file_paths)
    assert split(0) == (train, val)
    assert any(split(seed)[1] != val for seed in range(1, 6))


def test_key_split_is_identical_in_another_process(photos):
    code = (
        "import jax, sys; from jkutils.data import image_dataset_from_directory as f; "
        f"t, v = f({str(photos)!r}, image_size=(4, 4), key=jax.random.key(7), "
        "validation_split=0.5, subset='both', verbose=False); print(t.file_paths, v.file_paths)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    train, val = image_dataset_from_directory(
        photos,
        image_size=(4, 4),
        key=jax.random.key(7),
        validation_split=0.5,
        subset="both",
        verbose=False,
    )
    assert out == f"{train.file_paths} {val.file_paths}"


def test_each_epoch_has_its_own_order_over_the_same_files(photos):
    ds = image_dataset_from_directory(
        photos, image_size=(4, 4), batch_size=3, key=jax.random.key(3), verbose=False
    )
    orders = [ds.for_epoch(e).file_paths for e in range(4)]
    assert all(sorted(order) == sorted(orders[0]) for order in orders)
    assert len({tuple(order) for order in orders}) > 1
    assert orders[0] == ds.file_paths
    repeated = _batches(ds.repeat(2))
    _assert_same_batches(repeated, _batches(ds.for_epoch(0)) + _batches(ds.for_epoch(1)), 0)
    labels = np.concatenate([labels for _, labels in _batches(ds.for_epoch(2))])
    expected = [0 if "cats" in path else 1 for path in orders[2]]
    np.testing.assert_array_equal(labels, expected)


def test_shuffle_without_key_is_a_fresh_order_of_every_file(photos):
    ds = image_dataset_from_directory(photos, image_size=(4, 4), verbose=False)
    assert sorted(ds.file_paths) == sorted(_keras(photos, image_size=(4, 4)).file_paths)


def test_process_shards_cover_every_batch_once(photos):
    ds = image_dataset_from_directory(
        photos, image_size=(4, 4), batch_size=3, shuffle=False, verbose=False
    )
    shards = [process_shard(ds, i, 2) for i in range(2)]
    labels = np.concatenate([batch[1] for shard in shards for batch in _batches(shard)])
    np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 1, 1, 1])


def test_negative_index_is_refused(photos):
    ds = image_dataset_from_directory(photos, image_size=(4, 4), shuffle=False, verbose=False)
    with pytest.raises(IndexError, match="negative"):
        ds[-1]


def test_unbatched_dataset_goes_through_split_dataset(photos):
    ds = image_dataset_from_directory(
        photos, image_size=(4, 4), batch_size=None, shuffle=False, verbose=False
    )
    left, right = split_dataset(ds, left_size=0.5)
    assert len(left) == len(right) == 4
    image, label = right[0]
    assert image.shape == (4, 4, 3) and int(label) == 1


def test_worker_processes_give_the_same_batches(photos):
    ds = image_dataset_from_directory(
        photos, image_size=SIZE, batch_size=3, key=jax.random.key(0), verbose=False
    )
    pipeline = ds.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
    _assert_same_batches(_batches(pipeline), _batches(ds), atol=0)


@pytest.mark.parametrize("content", [b"not an image at all", "truncated"])
def test_unreadable_image_raises_naming_the_file(tmp_path, content):
    _save(tmp_path / "a" / "good.png", np.zeros((8, 8, 3), np.uint8))
    bad = tmp_path / "a" / "bad.jpg"
    if content == "truncated":
        _save(bad, np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        bad.write_bytes(content)
    ds = image_dataset_from_directory(tmp_path, image_size=(4, 4), shuffle=False, verbose=False)
    with pytest.raises(ValueError, match="bad.jpg"):
        ds[0]
    pipeline = ds.to_iter_dataset().mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
    with pytest.raises(ValueError, match="bad.jpg"):
        list(pipeline)


def test_sixteen_bit_png_needs_a_wide_dtype(tmp_path):
    _save(tmp_path / "a" / "deep.png", np.full((6, 6), 40000, np.uint16))
    kwargs = dict(image_size=(3, 3), color_mode="grayscale", shuffle=False, verbose=False)
    with pytest.raises(ValueError, match="deep.png.*dtype"):
        image_dataset_from_directory(tmp_path, **kwargs)[0]
    images, _ = image_dataset_from_directory(tmp_path, dtype="float32", **kwargs)[0]
    np.testing.assert_allclose(images, 40000.0)
    np.testing.assert_allclose(images, _batches(_keras(tmp_path, **kwargs))[0][0])


@pytest.fixture
def linked(tmp_path):
    """A class folder holding a symlinked sub-folder and a symlinked file, plus a class folder
    that is itself a symlink."""
    outside = tmp_path / "outside"
    _save(outside / "o.png", np.zeros((4, 4, 3), np.uint8))
    root = tmp_path / "root"
    _save(root / "a" / "a0.png", np.ones((4, 4, 3), np.uint8))
    (root / "a" / "link_dir").symlink_to(outside, target_is_directory=True)
    (root / "a" / "link_file.png").symlink_to(outside / "o.png")
    (root / "b").symlink_to(outside, target_is_directory=True)
    return root


@pytest.mark.parametrize("follow_links", [False, True])
def test_symlinks_listed_as_keras_lists_them(linked, follow_links):
    ours = image_dataset_from_directory(
        linked, image_size=(4, 4), shuffle=False, verbose=False, follow_links=follow_links
    )
    expected = _keras(linked, image_size=(4, 4), shuffle=False, follow_links=follow_links)
    assert ours.file_paths == expected.file_paths
    names = [pathlib.Path(p).relative_to(linked).as_posix() for p in ours.file_paths]
    inside = ["a/a0.png", "a/link_file.png"] + (["a/link_dir/o.png"] if follow_links else [])
    assert names == sorted(inside, key=lambda n: (n.count("/"), n)) + ["b/o.png"]


def test_thousands_of_tiny_files_all_appear_once(tmp_path):
    for i in range(2400):
        _save(tmp_path / f"class_{i % 3}" / f"{i:05d}.png", np.full((2, 2, 3), i % 256, np.uint8))
    train, val = image_dataset_from_directory(
        tmp_path,
        image_size=(2, 2),
        batch_size=64,
        key=jax.random.key(5),
        validation_split=0.2,
        subset="both",
        verbose=False,
    )
    expected = _keras(tmp_path, image_size=(2, 2), shuffle=False)
    assert sorted(train.file_paths + val.file_paths) == sorted(expected.file_paths)
    assert len(val.file_paths) == 480 and len(train) == -(-1920 // 64)
    labels = np.concatenate([batch[1] for batch in _batches(val)])
    np.testing.assert_array_equal(
        labels, [int(pathlib.Path(p).parent.name[-1]) for p in val.file_paths]
    )
    pixels = np.concatenate([batch[0][:, 0, 0, 0] for batch in _batches(val)])
    np.testing.assert_array_equal(pixels, [int(pathlib.Path(p).stem) % 256 for p in val.file_paths])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation_split": 0.2, "subset": "training"}, "`key`"),
        ({"validation_split": 0.2}, "`subset` is set"),
        ({"validation_split": 1.5, "subset": "both", "shuffle": False}, "between 0 and 1"),
        ({"validation_split": 0.1, "subset": "both", "shuffle": False}, "no validation files"),
        ({"subset": "train", "validation_split": 0.2}, "subset"),
        ({"labels": [0, 1]}, "len\\(labels\\) is 2 while we found 9"),
        ({"labels": "folders"}, "list/tuple of integer"),
        ({"labels": [0] * 9, "class_names": ["a"]}, "only pass `class_names`"),
        ({"class_names": ["cats", "birds"]}, "did not match"),
        ({"label_mode": None, "class_names": ["cats"]}, "cannot be specified"),
        ({"label_mode": "sparse"}, "label_mode"),
        ({"labels": [0, 1, 2, 0, 1, 2, 0, 1, 2], "label_mode": "binary"}, "exactly 2"),
        ({"color_mode": "cmyk"}, "color_mode"),
        ({"image_size": (10,)}, "image_size"),
        ({"interpolation": "gaussian"}, "interpolation"),
        ({"key": jax.random.key(0), "seed": 1}, "not both"),
        ({"format": "tf"}, "grain"),
        ({"crop_to_aspect_ratio": True, "pad_to_aspect_ratio": True}, "Only one"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(photos, kwargs, message):
    with pytest.raises(ValueError, match=message):
        image_dataset_from_directory(photos, verbose=False, **kwargs)


def test_empty_or_missing_folders_raise(tmp_path):
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="No image files found"):
        image_dataset_from_directory(tmp_path, verbose=False)
    with pytest.raises(ValueError, match="existing folder"):
        image_dataset_from_directory(tmp_path / "nowhere", verbose=False)


def test_verbose_prints_keras_counts(photos, capsys):
    image_dataset_from_directory(
        photos, image_size=(4, 4), key=jax.random.key(0), validation_split=0.25, subset="both"
    )
    assert capsys.readouterr().out.splitlines() == [
        "Found 8 files belonging to 2 classes.",
        "Using 6 files for training.",
        "Using 2 files for validation.",
    ]


# -- text ---------------------------------------------------------------------------------------


@pytest.fixture
def texts(tmp_path):
    docs = {
        "neg/a.txt": "bad movie\r\nreally",
        "neg/b.TXT": "ignored by Keras? no: upper",
        "pos/x.txt": "great — ünïcode",
        "pos/deep/y.txt": "",
        "pos/z.md": "not listed",
    }
    for name, text in docs.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
    return tmp_path


@pytest.mark.parametrize("max_length", [None, 4])
def test_text_batches_equal_keras(texts, max_length):
    kwargs = dict(shuffle=False, batch_size=2, max_length=max_length, verbose=False)
    ours = _batches(text_dataset_from_directory(texts, **kwargs))
    expected = _batches(keras.utils.text_dataset_from_directory(texts, format="grain", **kwargs))
    assert len(ours) == len(expected)
    for (strings, labels), (keras_strings, keras_labels) in zip(ours, expected):
        assert strings.dtype == object and list(strings) == list(keras_strings)
        np.testing.assert_array_equal(labels, keras_labels)


def test_text_keras_seed_gives_keras_order(texts):
    kwargs = dict(seed=42, batch_size=1, validation_split=0.5, subset="training", verbose=False)
    ours = _batches(text_dataset_from_directory(texts, **kwargs))
    expected = _batches(keras.utils.text_dataset_from_directory(texts, format="grain", **kwargs))
    assert [list(s) for s, _ in ours] == [list(s) for s, _ in expected]


def test_text_split_and_bad_encoding(texts):
    train, val = text_dataset_from_directory(
        texts, validation_split=0.5, subset="both", key=jax.random.key(0), verbose=False
    )
    assert sorted(train.file_paths + val.file_paths) == sorted(
        str(p) for p in texts.rglob("*") if p.suffix.lower() == ".txt"
    )
    (texts / "neg" / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt"):
        list(text_dataset_from_directory(texts, shuffle=False, verbose=False))


# -- audio --------------------------------------------------------------------------------------


def _write_wav(path, ints, width, rate=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    ints = np.asarray(ints)
    channels = 1 if ints.ndim == 1 else ints.shape[1]
    if width == 3:
        flat = ints.astype("<i4").reshape(-1)
        frames = np.stack([flat & 255, (flat >> 8) & 255, (flat >> 16) & 255], 1)
        data = frames.astype(np.uint8).tobytes()
    else:
        data = ints.astype({1: np.uint8, 2: "<i2", 4: "<i4"}[width]).tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(data)


def test_audio_decodes_pcm_widths_and_pads_batches(tmp_path):
    _write_wav(tmp_path / "no" / "a.wav", [0, 16384, -32768, 32767], 2)
    _write_wav(tmp_path / "no" / "b.wav", [0, 128, 255], 1)
    _write_wav(tmp_path / "yes" / "c.wav", [-(2**23), 2**22], 3)
    _write_wav(tmp_path / "yes" / "d.wav", [2**31 - 1, -(2**30)], 4)
    ds = audio_dataset_from_directory(tmp_path, shuffle=False, batch_size=4, verbose=False)
    audio, labels = ds[0]
    expected = np.zeros((4, 4, 1), np.float32)
    expected[0, :, 0] = [0, 0.5, -1, 32767 / 32768]
    expected[1, :3, 0] = [-1, 0, 127 / 128]
    expected[2, :2, 0] = [-1, 0.5]
    expected[3, :2, 0] = [(2**31 - 1) / 2**31, -0.5]
    np.testing.assert_allclose(audio, expected, rtol=1e-6)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


def test_audio_fixed_length_stereo_ragged_and_rate_check(tmp_path):
    stereo = np.array([[1, -1], [2, -2], [3, -3]]) * 1024
    _write_wav(tmp_path / "a" / "s.wav", stereo, 2, rate=16000)
    _write_wav(tmp_path / "a" / "t.wav", np.arange(6) * 1024, 2, rate=16000)
    fixed = audio_dataset_from_directory(
        tmp_path,
        output_sequence_length=5,
        shuffle=False,
        label_mode=None,
        batch_size=None,
        verbose=False,
    )
    np.testing.assert_allclose(fixed[0], np.pad(stereo / 32768, ((0, 2), (0, 0))))
    np.testing.assert_allclose(fixed[1][:, 0], np.arange(5) * 1024 / 32768)
    ragged = audio_dataset_from_directory(
        tmp_path, ragged=True, shuffle=False, verbose=False, label_mode=None
    )
    assert [clip.shape for clip in ragged[0]] == [(3, 2), (6, 1)]
    wrong_rate = audio_dataset_from_directory(
        tmp_path, sampling_rate=8000, shuffle=False, verbose=False
    )
    with pytest.raises(ValueError, match="s.wav.*16000"):
        wrong_rate[0]
    with pytest.raises(ValueError, match="ragged"):
        audio_dataset_from_directory(tmp_path, ragged=True, output_sequence_length=3)
    (tmp_path / "a" / "u.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match="u.wav"):
        list(audio_dataset_from_directory(tmp_path, shuffle=False, verbose=False))


def test_batches_are_independent_arrays(photos):
    ds = image_dataset_from_directory(
        photos, image_size=SIZE, batch_size=2, shuffle=False, verbose=False
    )
    kept = [ds[i][0] for i in range(len(ds))]
    again = [ds[i][0] for i in range(len(ds))]
    for first, second in zip(kept, again):
        np.testing.assert_array_equal(first, second)
    assert len({id(batch.base) if batch.base is not None else id(batch) for batch in kept}) == len(
        kept
    )


def test_cpu_bound_reads_never_exceed_one_per_usable_cpu(tmp_path):
    """grain reads with 16 threads; decoding batches run at most min(16, CPUs) at a time."""
    import threading
    import time

    from jkutils.data._cpu_slots import usable_cpus
    from jkutils.data.directory import DirectoryDataset, FileLoader

    class CountingLoader(FileLoader):
        cpu_bound = True
        lock = threading.Lock()
        running = 0
        most = 0

        def load(self, path):
            cls = type(self)
            with cls.lock:
                cls.running += 1
                cls.most = max(cls.most, cls.running)
            time.sleep(0.01)
            with cls.lock:
                cls.running -= 1
            return np.zeros(2)

        def stack(self, items):
            return np.stack(items)

    paths = [str(tmp_path / f"{i}.x") for i in range(96)]
    ds = DirectoryDataset(paths, None, CountingLoader(), 1, None, None)
    assert len(list(ds.to_iter_dataset(grain.ReadOptions(num_threads=16)))) == 96
    assert 1 <= CountingLoader.most <= min(16, usable_cpus())


_FORK_CHILD_SLOTS = """
import os
from jkutils.data._cpu_slots import cpu_slots, usable_cpus

slots = min(16, usable_cpus())
assert all(cpu_slots().acquire(blocking=False) for _ in range(slots))  # the parent holds all
pid = os.fork()
if pid == 0:  # the child: every slot must be free again
    os._exit(0 if all(cpu_slots().acquire(blocking=False) for _ in range(slots)) else 1)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_every_cpu_slot_free():
    # in a fresh interpreter without JAX, which must not be forked
    result = subprocess.run(
        [sys.executable, "-c", _FORK_CHILD_SLOTS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.stdout.strip() == "child exit 0", result.stderr
