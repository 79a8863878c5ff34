"""Datasets: registry, CIFAR-10 archive reader and subset rule, synthetic stand-in, sorting task."""

import hashlib
import io
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from centralflows.problem.build import load_dataset
from centralflows.problem.data import DATASETS, DataError, cifar10, get_dataset, sorting, synthetic_cifar

PER_BATCH = 12  # images per miniature batch


def _batch(indices, labels):
    """A batch dict in the official format: R plane = global index, G = 100, B = 200, marker R[0, 1] = 255."""
    data = np.zeros((len(indices), 3, 32, 32), np.uint8)
    data[:, 0] = np.asarray(indices)[:, None, None]
    data[:, 0, 0, 1] = 255
    data[:, 1], data[:, 2] = 100, 200
    return {b"data": data.reshape(len(indices), 3072), b"labels": list(labels), b"batch_label": b"mini"}


# The official archive's member order (not numeric; REFERENCE §3.1), written independently of the loader's.
OFFICIAL_ORDER = tuple(f"data_batch_{b}" if b else "test_batch" for b in (4, 0, 3, 2, 5, 1))


def test_the_loader_knows_the_official_member_order():
    assert cifar10.OFFICIAL_MEMBER_ORDER == OFFICIAL_ORDER


def write_mini_archive(root, order=OFFICIAL_ORDER):
    """Writes cifar-10-python.tar.gz with members in `order` (plus batches.meta).

    Batch data_batch_b holds global indices (b-1)*PER_BATCH.. in its R plane.

    Returns:
        (path, train labels in member order, train indices in member order).
    """
    rng = np.random.default_rng(5)
    train_labels = rng.integers(0, 10, 5 * PER_BATCH)
    test_labels = np.arange(PER_BATCH) % 10
    members = {
        f"data_batch_{b + 1}": _batch(
            range(b * PER_BATCH, (b + 1) * PER_BATCH), train_labels[b * PER_BATCH :][:PER_BATCH]
        )
        for b in range(5)
    }
    members["test_batch"] = _batch(range(PER_BATCH), test_labels)
    members["batches.meta"] = {b"label_names": [b"airplane", b"automobile", b"bird", b"cat"]}
    path = root / cifar10.FILENAME
    with tarfile.open(path, "w:gz") as tar:
        for name in ("batches.meta", *order):
            payload = pickle.dumps(members[name])
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    batches = [int(name[-1]) - 1 for name in order if name.startswith("data_batch_")]
    index = np.concatenate([np.arange(b * PER_BATCH, (b + 1) * PER_BATCH) for b in batches])
    return path, train_labels[index], index


@pytest.fixture
def mini_cifar(tmp_path, monkeypatch):
    path, train_labels, index = write_mini_archive(tmp_path)
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(path.read_bytes()).hexdigest())
    return tmp_path, train_labels, index


def raw_pixels(x):
    """Undoes the per-channel normalisation."""
    return np.rint(x * 255 * cifar10.STD + 255 * cifar10.MEAN)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: cifar10, synthetic-cifar10, sorting.*'cifar10'"):
        get_dataset("cifar100")
    assert [get_dataset(name).__name__ for name in DATASETS] == [
        cifar10.__name__,
        synthetic_cifar.__name__,
        sorting.__name__,
    ]


def test_unknown_dataset_option_is_named():
    with pytest.raises(ValueError, match="'sorting' option.*lenght.*valid options: n, n_test"):
        load_dataset({"name": "sorting", "lenght": 3})


def test_read_archive_layout_nhwc(mini_cifar):
    x_train, y_train, x_test, y_test = cifar10.read_archive(mini_cifar[0] / cifar10.FILENAME)
    assert x_train.shape == (5 * PER_BATCH, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (PER_BATCH, 32, 32, 3)
    # train batches in the archive's member order (4, 3, 2, 5, 1), not numeric order
    np.testing.assert_array_equal(x_train[:, 5, 7, 0], mini_cifar[2])
    assert mini_cifar[2][0] == 3 * PER_BATCH
    assert (x_train[:, 0, 1, 0] == 255).all() and (x_train[:, 1, 0, 0] != 255).all()  # row-major pixels
    assert (x_train[..., 1] == 100).all() and (x_train[..., 2] == 200).all()
    np.testing.assert_array_equal(y_train, mini_cifar[1])


def test_cifar_subset_is_first_per_class_in_member_order_then_shuffled(mini_cifar):
    root, labels, member_index = mini_cifar
    ds = load_dataset({"name": "cifar10", "root": str(root), "classes": 3, "n": 6})
    expected = np.concatenate([np.flatnonzero(labels == c)[:2] for c in range(3)])
    perm = np.random.default_rng(0).permutation(6)
    index = raw_pixels(ds.x_train)[:, 5, 7, 0]
    np.testing.assert_array_equal(index, member_index[expected][perm])
    numeric_labels = labels[np.argsort(member_index)]
    numeric = np.concatenate([np.flatnonzero(numeric_labels == c)[:2] for c in range(3)])
    assert set(member_index[expected]) != set(numeric)  # numeric batch order would pick other images
    np.testing.assert_array_equal(ds.y_train, labels[expected][perm])
    np.testing.assert_allclose(raw_pixels(ds.x_train)[..., 1:], np.broadcast_to([100, 200], (6, 32, 32, 2)))
    assert ds.name == "cifar10" and ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.spec.input_shape == (32, 32, 3) and ds.spec.num_outputs == 3 and not ds.binary
    # test: every test example of the kept classes, shuffled the same way
    assert sorted(ds.y_test) == sorted(y for y in np.arange(PER_BATCH) % 10 if y < 3)


def test_cifar_archive_missing_a_batch_is_rejected(tmp_path):
    path, *_ = write_mini_archive(tmp_path, order=("data_batch_1", "test_batch"))
    with pytest.raises(DataError, match="lacks some of data_batch_1..5.*found data_batch_1"):
        cifar10.read_archive(path)


REAL_ARCHIVE = Path(__file__).resolve().parents[2] / "data" / cifar10.FILENAME


@pytest.mark.skipif(not REAL_ARCHIVE.exists(), reason=f"needs the real archive at {REAL_ARCHIVE}")
def test_real_archive_train_order_matches_the_authors():
    """The HF viewer's first ten train labels (data_batch_1 would start 6 9 9 4 1 1 2 7 8 3)."""
    assert cifar10._md5(REAL_ARCHIVE) == cifar10.MD5
    _, y_train, _, y_test = cifar10.read_archive(REAL_ARCHIVE)
    np.testing.assert_array_equal(y_train[:10], [0, 6, 0, 2, 7, 2, 1, 2, 4, 1])
    assert len(y_train) == 50000 and len(y_test) == 10000


def test_cifar_binary_uses_first_two_classes_and_one_output(mini_cifar):
    ds = load_dataset({"name": "cifar10", "root": str(mini_cifar[0]), "classes": "binary", "n": 4})
    assert ds.binary and ds.spec.num_outputs == 1 and set(ds.y_train) == {0, 1}


def test_cifar_missing_archive_names_path_url_and_command(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset({"name": "cifar10", "root": str(tmp_path / "nowhere")})
    message = str(error.value)
    assert str(tmp_path / "nowhere" / cifar10.FILENAME) in message
    assert cifar10.URL in message and "download_cifar10" in message


def test_cifar_wrong_checksum_is_rejected(tmp_path):
    write_mini_archive(tmp_path)  # MD5 left at the official value
    with pytest.raises(DataError, match="wrong md5"):
        load_dataset({"name": "cifar10", "root": str(tmp_path)})


def test_stand_in_archive_is_accepted_only_by_its_own_md5(tmp_path, monkeypatch, caplog):
    path, _, _ = write_mini_archive(tmp_path)
    monkeypatch.setenv(cifar10.STAND_IN_MD5_ENV, "0" * 32)  # another file's md5: still rejected
    with pytest.raises(DataError, match="wrong md5"):
        load_dataset({"name": "cifar10", "root": str(tmp_path), "n": 8})
    monkeypatch.setenv(cifar10.STAND_IN_MD5_ENV, hashlib.md5(path.read_bytes()).hexdigest())
    with caplog.at_level("WARNING"):
        ds = load_dataset({"name": "cifar10", "root": str(tmp_path), "n": 8})
    assert ds.x_train.shape[0] == 8 and "stand-in archive" in caplog.text


def test_download_offline_gives_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(cifar10.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match="(?s)could not download.*cs.toronto.edu"):
        cifar10.download_cifar10(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_verifies_checksum_and_writes_atomically(tmp_path, monkeypatch):
    payload = b"not really cifar"
    monkeypatch.setattr(cifar10.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    with pytest.raises(DataError, match="wrong md5"):
        cifar10.download_cifar10(tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(payload).hexdigest())
    path = cifar10.download_cifar10(tmp_path)
    assert path.read_bytes() == payload and list(tmp_path.iterdir()) == [path]


def test_synthetic_cifar_is_deterministic_normalised_and_learnable():
    ds = load_dataset({"name": "synthetic-cifar10", "n": 200, "n_test": 200})
    again = load_dataset({"name": "synthetic-cifar10", "n": 200, "n_test": 200})
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    assert ds.name == "synthetic-cifar10" and ds.x_train.shape == (200, 32, 32, 3)
    assert ds.spec.num_outputs == 4 and np.bincount(ds.y_train).tolist() == [50] * 4
    assert np.abs(ds.x_train.mean()) < 0.2 and 0.7 < ds.x_train.std() < 1.3
    # class structure: nearest class mean from train classifies test far above chance
    means = np.stack([ds.x_train[ds.y_train == c].reshape(-1, 3072).mean(0) for c in range(4)])
    dist = ((ds.x_test.reshape(-1, 1, 3072) - means) ** 2).sum(-1)
    assert (dist.argmin(1) == ds.y_test).mean() > 0.9


def unshuffled_sorting_rows(n_rows, vocab=4, length=8):
    """(x, y) of the sorting task in generation order, written out independently of the loader."""
    inp = np.random.default_rng(0).integers(0, vocab, size=(n_rows, length))
    cat = np.concatenate([inp, np.sort(inp, axis=1)], axis=1)
    x, y = cat[:, :-1], cat[:, 1:].copy()
    y[:, : length - 1] = -1
    return x, y


def test_sorting_targets_and_masks():
    ds = load_dataset({"name": "sorting", "n": 5, "n_test": 3})
    assert ds.x_train.shape == (5, 15) and ds.y_train.shape == (5, 15) and ds.x_test.shape == (3, 15)
    assert ds.x_train.dtype == np.int32 and ds.y_train.dtype == np.int32
    assert ds.spec.kind == "sequence" and ds.spec.vocab_size == 4 and ds.spec.num_outputs == 4
    np.testing.assert_array_equal(ds.y_train[:, :7], -1)
    inp = ds.x_train[:, :8]
    np.testing.assert_array_equal(ds.y_train[:, 7:], np.sort(inp, axis=1))  # the sorted copy
    np.testing.assert_array_equal(ds.x_train[:, 8:], np.sort(inp, axis=1)[:, :7])  # shifted by one


@pytest.mark.parametrize("n, n_test", [(5, 3), (1000, 1000), (250, 1000)])
def test_sorting_rows_are_the_generated_rows_permuted_as_the_authors_loader_does(n, n_test):
    """Train = first n generated rows, test = the next n_test, each permuted by a fresh
    default_rng(0).permutation of its length (the authors' DatasetBuilder._shuffle), train first."""
    ds = load_dataset({"name": "sorting", "n": n, "n_test": n_test})
    x, y = unshuffled_sorting_rows(n + n_test)
    train, test = np.random.default_rng(0).permutation(n), np.random.default_rng(0).permutation(n_test)
    np.testing.assert_array_equal(ds.x_train, x[:n][train])
    np.testing.assert_array_equal(ds.y_train, y[:n][train])
    np.testing.assert_array_equal(ds.x_test, x[n:][test])
    np.testing.assert_array_equal(ds.y_test, y[n:][test])
    assert not np.array_equal(ds.x_train, x[:n])  # the permutation moved rows
