//! Class labels in the data (`--condition class`): the embedded MNIST's, a `.npz`'s
//! `train_labels`/`test_labels` or `y_train`/`y_test` (any integer dtype), MNIST IDX labels
//! files beside the images, CIFAR-10's label bytes; labels follow their images through
//! subsets, slices, binarization (threshold, stochastic, dynamic batches); a malformed labels
//! array is a clear error, and so is asking for the labels of data that has none.
//!
//! Run with `cargo test --release --test data_labels`.

use std::path::Path;

use pixelrnn::data::{
    draw_batch, embedded_mnist, load_dataset, load_dataset_as, load_idx_labels, load_path,
    Binarize, DataError, Images, CIFAR10_RECORD_BYTES,
};

/// The `.npz` writer of these tests.
type Npz = npyz::npz::NpzWriter<std::io::BufWriter<std::fs::File>>;

/// A case of bad labels: its name, what it writes as `train_labels`, the expected message.
type BadLabels = (&'static str, Box<dyn Fn(&mut Npz)>, &'static str);

fn write_npz<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    npz: &mut Npz,
    name: &str,
    shape: &[u64],
    data: &[T],
) {
    use npyz::WriterBuilder;
    let mut w = npz
        .array::<T>(name, Default::default())
        .unwrap()
        .default_dtype()
        .shape(shape)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 % 256) as u8).collect()
}

#[test]
fn embedded_mnist_has_its_labels() {
    let d = embedded_mnist();
    assert_eq!(d.num_classes(), Some(10));
    let (tr, te) = (
        d.train.labels.as_ref().unwrap(),
        d.test.labels.as_ref().unwrap(),
    );
    assert_eq!((tr.len(), te.len()), (9000, 1000));
    // All ten digits appear in both splits, each roughly a tenth of the images.
    for split in [tr, te] {
        for k in 0..10 {
            let count = split.iter().filter(|&&l| l == k).count();
            assert!(
                count * 20 > split.len() && count * 5 < split.len(),
                "digit {k}: {count} of {}",
                split.len()
            );
        }
    }
    // Binarized (threshold and stochastic) keep them.
    for spec in ["binarized-mnist", "binarized-mnist-stochastic"] {
        let b = load_dataset(spec, false).unwrap();
        assert_eq!(b.train.labels.as_ref(), Some(tr), "{spec}");
        assert_eq!(b.test.labels.as_ref(), Some(te), "{spec}");
    }
}

#[test]
fn labels_follow_subsets_slices_and_dynamic_batches() {
    let d = embedded_mnist();
    let l = d.train.labels.clone().unwrap();
    let s = d.train.subset(&[5, 2, 5]);
    assert_eq!(s.labels, Some(vec![l[5], l[2], l[5]]));
    let sl = d.train.slice(10..13);
    assert_eq!(sl.labels, Some(l[10..13].to_vec()));
    let dynamic = load_dataset_as("mnist", Binarize::Dynamic { seed: 3 }).unwrap();
    let idx = [7, 1, 4000];
    let grey = embedded_mnist().train;
    let batch = draw_batch(&grey, 3, 2, 3, &idx);
    assert_eq!(batch.labels, Some(vec![l[7], l[1], l[4000]]));
    let tb = dynamic.training_batch(2, 3, &idx).unwrap();
    assert_eq!(tb.labels, batch.labels);
}

#[test]
fn npz_labels_any_integer_dtype_both_namings() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.npz");
    {
        let mut npz = npyz::npz::NpzWriter::create(&p).unwrap();
        write_npz::<u8>(&mut npz, "x_train", &[3, 2, 2], &pixels(12));
        write_npz::<u8>(&mut npz, "x_test", &[2, 2, 2], &pixels(8));
        write_npz::<i64>(&mut npz, "y_train", &[3], &[4, 0, 9]);
        write_npz::<i64>(&mut npz, "y_test", &[2], &[1, 2]);
    }
    let d = load_path(&p).unwrap();
    assert_eq!(d.train.labels, Some(vec![4, 0, 9]));
    assert_eq!(d.test.labels, Some(vec![1, 2]));
    assert_eq!(d.require_labels().unwrap(), 10);

    let q = dir.path().join("e.npz");
    {
        let mut npz = npyz::npz::NpzWriter::create(&q).unwrap();
        write_npz::<u8>(&mut npz, "train", &[2, 2, 2], &pixels(8));
        write_npz::<u8>(&mut npz, "test", &[1, 2, 2], &pixels(4));
        write_npz::<u16>(&mut npz, "train_labels", &[2], &[3, 1]);
        write_npz::<u16>(&mut npz, "test_labels", &[1], &[0]);
    }
    let d = load_path(&q).unwrap();
    assert_eq!(d.train.labels, Some(vec![3, 1]));
    assert_eq!(d.num_classes(), Some(4));
}

#[test]
fn npz_bad_labels_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [BadLabels; 3] = [
        (
            "count",
            Box::new(|n| write_npz::<u8>(n, "train_labels", &[3], &[0, 1, 2])),
            "3 labels for 2 images",
        ),
        (
            "negative",
            Box::new(|n| write_npz::<i32>(n, "train_labels", &[2], &[0, -4])),
            "label 1 is a negative value",
        ),
        (
            "float",
            Box::new(|n| write_npz::<f32>(n, "train_labels", &[2], &[0.0, 1.0])),
            "expected class labels, a 1-D integer array, found float32",
        ),
    ];
    for (name, labels, message) in cases {
        let p = dir.path().join(format!("{name}.npz"));
        {
            let mut npz = npyz::npz::NpzWriter::create(&p).unwrap();
            write_npz::<u8>(&mut npz, "train", &[2, 2, 2], &pixels(8));
            write_npz::<u8>(&mut npz, "test", &[1, 2, 2], &pixels(4));
            labels(&mut npz);
            write_npz::<u8>(&mut npz, "test_labels", &[1], &[0]);
        }
        let err = load_path(&p).unwrap_err().to_string();
        assert!(err.contains(message), "{name}: {err}");
        assert!(
            err.contains("train_labels"),
            "{name}: names the array: {err}"
        );
    }
}

fn write_idx(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

#[test]
fn idx_labels_beside_the_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_idx(
        &d.join("train-images-idx3-ubyte"),
        0x803,
        &[3, 2, 2],
        &pixels(12),
    );
    write_idx(
        &d.join("t10k-images-idx3-ubyte"),
        0x803,
        &[2, 2, 2],
        &pixels(8),
    );
    // Without labels files: no labels, and --condition class is refused by name.
    let plain = load_path(d).unwrap();
    assert_eq!(plain.num_classes(), None);
    let err = plain.require_labels().unwrap_err();
    assert!(matches!(err, DataError::NoLabels { .. }));
    assert!(err.to_string().contains("no class labels"), "{err}");
    write_idx(&d.join("train-labels-idx1-ubyte"), 0x801, &[3], &[7, 0, 2]);
    write_idx(&d.join("t10k-labels-idx1-ubyte"), 0x801, &[2], &[1, 1]);
    let ds = load_path(d).unwrap();
    assert_eq!(ds.train.labels, Some(vec![7, 0, 2]));
    assert_eq!(ds.test.labels, Some(vec![1, 1]));
    assert_eq!(ds.num_classes(), Some(8));
    // A single images file finds its labels too (and split_single keeps them).
    let single = load_path(d.join("train-images-idx3-ubyte")).unwrap();
    assert_eq!(single.train.labels, Some(vec![7, 0]));
    assert_eq!(single.test.labels, Some(vec![2]));
    // Bad labels files.
    write_idx(&d.join("bad"), 0x803, &[2], &[1, 1]);
    assert!(load_idx_labels(d.join("bad"))
        .unwrap_err()
        .to_string()
        .contains("not an IDX labels file"));
    write_idx(&d.join("t10k-labels-idx1-ubyte"), 0x801, &[3], &[1, 1]);
    assert!(load_path(d)
        .unwrap_err()
        .to_string()
        .contains("promises 3 labels"));
    write_idx(&d.join("t10k-labels-idx1-ubyte"), 0x801, &[3], &[1, 1, 1]);
    let err = load_path(d).unwrap_err().to_string();
    assert!(err.contains("3 labels for 2 images"), "{err}");
}

#[test]
fn cifar_label_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("data_batch_1.bin");
    let mut bytes = Vec::new();
    for label in [3u8, 9, 0] {
        let mut rec = vec![label];
        rec.extend(pixels(CIFAR10_RECORD_BYTES - 1));
        bytes.extend(rec);
    }
    std::fs::write(&p, bytes).unwrap();
    let d = load_path(&p).unwrap();
    assert_eq!(d.train.labels, Some(vec![3, 9]));
    assert_eq!(d.test.labels, Some(vec![0]));
}

#[test]
fn with_labels_checks_the_count() {
    let im = Images::new(2, 1, 1, 1, false, vec![0, 1]).unwrap();
    assert!(im.clone().with_labels(vec![0]).is_err());
    let l = im.with_labels(vec![0, 5]).unwrap();
    assert_eq!(l.num_classes(), Some(6));
    assert_eq!(l.binarize().labels, Some(vec![0, 5]));
}
