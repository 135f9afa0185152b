//! data: IDX and .amat readers (round trips of files the test writes, plain and gzip;
//! corrupted files rejected with typed errors naming the file and the problem),
//! binarisation, minibatches, validation split, the synthetic digits, and (when present)
//! the real files in ../shared/data.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use gumbelgrad::data::amat::AmatSplit;
use gumbelgrad::data::binarize::{sample, threshold};
use gumbelgrad::data::{
    Binarization, Dataset, Minibatches, MnistSplit, Pixels, SyntheticDigits, load_binarized_mnist,
    load_mnist, read_amat, read_idx_images, read_idx_labels,
};
use gumbelgrad::{Error, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gumbelgrad-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An IDX image file, spelled out from the format: magic, count, rows, cols, pixels.
fn idx_images(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [0x0000_0803u32, count, rows, cols] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    bytes
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [0x0000_0801u32, labels.len() as u32] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(labels);
    bytes
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Asserts a BadFile error naming `path` whose message contains `needle`.
fn assert_bad_file<T: std::fmt::Debug>(result: Result<T, Error>, path: &Path, needle: &str) {
    match result {
        Err(Error::BadFile { path: p, message }) => {
            assert_eq!(p, path.display().to_string());
            assert!(
                message.contains(needle),
                "{message:?} should mention {needle:?}"
            );
        }
        other => panic!("expected BadFile mentioning {needle:?}, got {other:?}"),
    }
}

const PIXELS: [u8; 12] = [0, 255, 51, 102, 0, 0, 255, 255, 1, 2, 3, 4];

#[test]
fn idx_round_trips_plain_and_gzip() {
    let dir = scratch("idx");
    for compressed in [false, true] {
        let (images, labels) = (idx_images(3, 2, 2, &PIXELS), idx_labels(&[7, 2, 9]));
        let (images, labels) = if compressed {
            (gzip(&images), gzip(&labels))
        } else {
            (images, labels)
        };
        let suffix = if compressed { ".gz" } else { "" };
        let images_path = dir.join(format!("t10k-images-idx3-ubyte{suffix}"));
        let labels_path = dir.join(format!("t10k-labels-idx1-ubyte{suffix}"));
        write(&images_path, &images);
        write(&labels_path, &labels);

        let (tensor, rows, cols) = read_idx_images(&images_path).unwrap();
        assert_eq!((tensor.rows(), rows, cols), (3, 2, 2));
        let expected: Vec<f32> = PIXELS.iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(tensor.to_tensor::<f32>().as_slice(), &expected[..]);
        assert_eq!(tensor.as_bytes(), &PIXELS[..]);
        assert_eq!(read_idx_labels(&labels_path).unwrap(), vec![7, 2, 9]);

        let data = load_mnist(&dir, MnistSplit::Test).unwrap();
        assert_eq!((data.len(), data.height, data.width), (3, 2, 2));
        assert_eq!(data.labels, Some(vec![7, 2, 9]));
        std::fs::remove_file(&images_path).unwrap();
        std::fs::remove_file(&labels_path).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_idx_files_are_typed_errors_naming_the_file() {
    let dir = scratch("idx-corrupt");
    let path = dir.join("bad-images-idx3-ubyte");
    let good = idx_images(3, 2, 2, &PIXELS);

    write(&path, &idx_labels(&[1, 2, 3]));
    assert_bad_file(read_idx_images(&path), &path, "this is a label file");
    write(&path, &good);
    assert_bad_file(
        read_idx_labels(&path),
        &path,
        "wrong magic number 0x00000803",
    );
    write(&path, b"GIF89a garbage....");
    assert_bad_file(read_idx_images(&path), &path, "wrong magic number");
    write(&path, &good[..good.len() - 1]);
    assert_bad_file(read_idx_images(&path), &path, "truncated");
    write(&path, &good[..10]);
    assert_bad_file(
        read_idx_images(&path),
        &path,
        "shorter than the 16-byte header",
    );
    let mut long = good.clone();
    long.push(0);
    write(&path, &long);
    assert_bad_file(read_idx_images(&path), &path, "trailing bytes");
    write(&path, &idx_images(1, 0, 28, &[]));
    assert_bad_file(read_idx_images(&path), &path, "0x28");
    let labels = idx_labels(&[1, 2, 3]);
    write(&path, &labels[..labels.len() - 2]);
    assert_bad_file(
        read_idx_labels(&path),
        &path,
        "promises 3 labels, the file has 1",
    );

    let zipped = gzip(&good);
    write(&path, &zipped[..zipped.len() / 2]);
    assert_bad_file(
        read_idx_images(&path),
        &path,
        "gzip data is corrupt or truncated",
    );

    // Counts that disagree between the image and label files.
    write(&dir.join("train-images-idx3-ubyte.gz"), &gzip(&good));
    let labels_path = dir.join("train-labels-idx1-ubyte.gz");
    write(&labels_path, &gzip(&idx_labels(&[1, 2])));
    assert_bad_file(
        load_mnist(&dir, MnistSplit::Train),
        &labels_path,
        "count mismatch",
    );

    // Missing files and folders: Io errors naming what was looked for.
    match load_mnist(&dir, MnistSplit::Test) {
        Err(Error::Io { path, message }) => {
            assert!(path.contains("t10k-images-idx3-ubyte"), "{path}");
            assert!(message.contains("not found"), "{message}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(matches!(
        load_mnist(dir.join("nope"), MnistSplit::Test),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        read_idx_images(dir.join("nope.gz")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `lines` images of 784 values: image i has ink at pixels i, i + 100, i + 200.
fn amat_text(lines: usize) -> String {
    let mut text = String::new();
    for i in 0..lines {
        let values: Vec<&str> = (0..784)
            .map(|p| if p % 100 == i { "1" } else { "0" })
            .collect();
        text.push_str(&values.join(" "));
        text.push('\n');
    }
    text
}

#[test]
fn amat_round_trips_plain_and_gzip() {
    let dir = scratch("amat");
    let text = amat_text(3);
    for (name, bytes) in [
        ("plain.amat", text.clone().into_bytes()),
        ("zipped.amat.gz", gzip(text.as_bytes())),
    ] {
        let path = dir.join(name);
        write(&path, &bytes);
        let data = read_amat(&path).unwrap();
        assert_eq!(
            (data.len(), data.height, data.width, data.labels.is_none()),
            (3, 28, 28, true)
        );
        for i in 0..3 {
            let ink: Vec<usize> = (0..784).filter(|&p| data.images.get(i, p) == 1.0).collect();
            assert_eq!(ink, (0..8).map(|k| i + 100 * k).collect::<Vec<_>>());
        }
    }
    // Windows line endings and no final newline are fine too.
    let path = dir.join("crlf.amat");
    write(&path, text.replace('\n', "\r\n").trim_end().as_bytes());
    assert_eq!(read_amat(&path).unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ink in every column, first and last included, in both values: image 0 is all ink,
/// image 1 has ink in the even columns, image 2 in the odd ones (column 783 among them),
/// image 3 has ink only in the first and last columns.
#[test]
fn amat_round_trip_has_ink_in_every_column() {
    let dir = scratch("amat-every-column");
    let patterns: [fn(usize) -> bool; 4] = [
        |_| true,
        |p| p % 2 == 0,
        |p| p % 2 == 1,
        |p| p == 0 || p == 783,
    ];
    let mut text = String::new();
    for ink in patterns {
        let values: Vec<&str> = (0..784).map(|p| if ink(p) { "1" } else { "0" }).collect();
        text.push_str(&values.join(" "));
        text.push('\n');
    }
    for (name, bytes) in [
        ("plain.amat", text.clone().into_bytes()),
        ("zipped.amat.gz", gzip(text.as_bytes())),
    ] {
        let path = dir.join(name);
        write(&path, &bytes);
        let data = read_amat(&path).unwrap();
        assert_eq!(data.len(), patterns.len());
        for (i, ink) in patterns.iter().enumerate() {
            for p in 0..784 {
                let expected = if ink(p) { 1.0 } else { 0.0 };
                assert_eq!(
                    data.images.get(i, p),
                    expected,
                    "{name}: image {i}, pixel {p}"
                );
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A gzip file that inflates to one endless line is rejected after `MAX_LINE_BYTES`,
/// and one whose IDX header promises 2 images followed by megabytes of zeros after the
/// announced pixels: neither is read to its end.
#[test]
fn small_gzip_files_inflating_to_much_more_are_rejected_early() {
    let dir = scratch("gzip-bombs");
    let zeros = vec![b'0'; 8 << 20];
    let path = dir.join("endless.amat.gz");
    write(&path, &gzip(&zeros));
    assert_bad_file(read_amat(&path), &path, "line 1: longer than");

    let mut images = idx_images(2, 2, 2, &[0; 8]);
    images.resize(8 << 20, 0);
    let path = dir.join("lying-images.gz");
    write(&path, &gzip(&images));
    assert_bad_file(
        read_idx_images(&path),
        &path,
        "trailing bytes: the header promises 2 images of 2x2 (8 pixel bytes)",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_amat_lines_are_typed_errors_with_line_numbers() {
    let dir = scratch("amat-bad");
    let path = dir.join("bad.amat");
    let lines: Vec<String> = amat_text(3).lines().map(str::to_string).collect();

    let short = format!("{}\n{}\n{}\n", lines[0], &lines[1][2..], lines[2]);
    write(&path, short.as_bytes());
    assert_bad_file(
        read_amat(&path),
        &path,
        "line 2: expected 784 values, found 783",
    );

    let long = format!("{}\n{}\n{} 0\n", lines[0], lines[1], lines[2]);
    write(&path, long.as_bytes());
    assert_bad_file(
        read_amat(&path),
        &path,
        "line 3: expected 784 values, found more",
    );

    let mut values: Vec<&str> = lines[2].split(' ').collect();
    values[4] = "2";
    let bad_value = format!("{}\n{}\n{}\n", lines[0], lines[1], values.join(" "));
    write(&path, bad_value.as_bytes());
    assert_bad_file(
        read_amat(&path),
        &path,
        "line 3, value 5: `2` is not 0 or 1",
    );

    let blank = format!("{}\n\n{}\n", lines[0], lines[1]);
    write(&path, blank.as_bytes());
    assert_bad_file(
        read_amat(&path),
        &path,
        "line 2: expected 784 values, found 0",
    );

    // A folder holding a too-short "test" split.
    let test_path = dir.join("binarized_mnist_test.amat.gz");
    write(&test_path, &gzip(amat_text(2).as_bytes()));
    assert_bad_file(
        load_binarized_mnist(&dir, AmatSplit::Test),
        &test_path,
        "count mismatch: 2 images, the published file has 10000",
    );
    assert!(matches!(
        load_binarized_mnist(&dir, AmatSplit::Valid),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binarisation_schemes() {
    let gray = Tensor::<f32>::from_vec(1, 5, vec![0.0, 0.2, 0.5, 0.51, 1.0]).unwrap();
    assert_eq!(threshold(&gray, 0.5).as_slice(), &[0.0, 0.0, 0.0, 1.0, 1.0]);

    // A sampled pixel with intensity p is 1 with probability p: the mean of n draws is
    // within 4 standard errors (sqrt(p (1 - p) / n)) of p.
    let n = 20_000;
    let p = 0.3f32;
    let many = Tensor::<f32>::full(1, n, p);
    let drawn = sample(&many, &mut StdRng::seed_from_u64(1));
    let mean = drawn.sum() as f64 / n as f64;
    let se = (0.3 * 0.7 / n as f64).sqrt();
    assert!((mean - 0.3).abs() < 4.0 * se, "mean {mean}");
    assert!(drawn.as_slice().iter().all(|&x| x == 0.0 || x == 1.0));

    let data = Dataset::new(many.clone(), None, 1, n).unwrap();
    let fixed = Binarization::Static { seed: 9 };
    assert_eq!(fixed.prepare(&data), fixed.prepare(&data)); // same seed, same draw
    let mut rng = StdRng::seed_from_u64(2);
    assert_eq!(fixed.batch(many.clone(), &mut rng), many); // static: batches untouched
    let first = Binarization::Dynamic.batch(many.clone(), &mut rng);
    let second = Binarization::Dynamic.batch(many.clone(), &mut rng);
    assert_ne!(first, second); // dynamic: fresh draw each batch
    assert_eq!(Binarization::Dynamic.prepare(&data), data);
    assert_eq!(
        Binarization::Threshold(0.25).prepare(&data).images,
        Pixels::from_tensor(&Tensor::full(1, n, 1.0)).unwrap()
    );
}

#[test]
fn minibatches_cover_each_example_once_and_follow_the_seed() {
    let batches = Minibatches::for_epoch(103, 10, false, 5, 0).unwrap();
    assert_eq!(batches.len(), 11);
    assert_eq!(batches.batch(10).len(), 3);
    let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
    assert_ne!(all, (0..103).collect::<Vec<_>>(), "shuffled");
    all.sort();
    assert_eq!(all, (0..103).collect::<Vec<_>>());

    assert_eq!(
        batches,
        Minibatches::for_epoch(103, 10, false, 5, 0).unwrap()
    );
    assert_ne!(
        batches,
        Minibatches::for_epoch(103, 10, false, 5, 1).unwrap()
    );
    assert_ne!(
        batches,
        Minibatches::for_epoch(103, 10, false, 6, 0).unwrap()
    );

    let dropped = Minibatches::for_epoch(103, 10, true, 5, 0).unwrap();
    assert_eq!(dropped.len(), 10);
    assert!(dropped.iter().all(|b| b.len() == 10));

    let sequential = Minibatches::sequential(5, 2).unwrap();
    assert_eq!(
        sequential.iter().collect::<Vec<_>>(),
        vec![&[0, 1][..], &[2, 3], &[4]]
    );
    assert!(Minibatches::sequential(5, 0).is_err());
}

#[test]
fn validation_split_is_disjoint_complete_and_seeded() {
    let n = 50;
    // Image i's one pixel is byte i (intensity i / 255), its label i.
    let images = Pixels::from_bytes(n, 1, (0..n as u8).collect()).unwrap();
    let labels: Vec<u8> = (0..n).map(|i| i as u8).collect();
    let data = Dataset::from_pixels(images, Some(labels), 1, 1).unwrap();
    let (train, valid) = data.split_validation(12, 3).unwrap();
    assert_eq!((train.len(), valid.len()), (38, 12));
    let mut ids: Vec<u8> = train.labels.clone().unwrap();
    ids.extend(valid.labels.clone().unwrap());
    // images travel with their labels
    assert!(
        train
            .images
            .as_bytes()
            .iter()
            .zip(train.labels.as_ref().unwrap())
            .all(|(&x, &l)| x == l)
    );
    ids.sort();
    assert_eq!(ids, (0..n as u8).collect::<Vec<_>>());
    assert_eq!(
        data.split_validation(12, 3).unwrap(),
        (train, valid.clone())
    );
    assert_ne!(data.split_validation(12, 4).unwrap().1, valid);
    assert!(data.split_validation(51, 0).is_err());
    assert!(Dataset::new(Tensor::zeros(2, 4), Some(vec![1]), 2, 2).is_err());
    assert!(Dataset::new(Tensor::zeros(2, 4), None, 3, 2).is_err());
}

/// Images are stored a byte per pixel: MNIST's intensities `byte / 255` and binary
/// values come back exactly, others to the nearest 1/255, and values that are not
/// intensities (NaN, infinite, outside [0, 1]) are refused with a typed error.
#[test]
fn pixels_store_intensities_as_bytes() {
    let exact: Vec<f32> = (0..=255u8).map(|b| b as f32 / 255.0).collect();
    let pixels = Pixels::from_tensor(&Tensor::from_vec(16, 16, exact.clone()).unwrap()).unwrap();
    assert_eq!(pixels.as_bytes(), &(0..=255u8).collect::<Vec<_>>()[..]);
    assert_eq!(pixels.to_tensor::<f32>().as_slice(), &exact[..]);
    assert_eq!(pixels.get(1, 0), 16.0 / 255.0);
    assert_eq!(pixels.row_values::<f64>(0)[3], (3.0f32 / 255.0) as f64);
    let rounded = Pixels::from_tensor(&Tensor::from_vec(1, 2, vec![0.5, 0.3]).unwrap()).unwrap();
    assert_eq!(rounded.as_bytes(), &[128, 77]);
    assert_eq!(
        rounded.gather::<f32>(&[0, 0]).shape(),
        gumbelgrad::Shape::new(2, 2)
    );
    for bad in [f32::NAN, f32::INFINITY, -0.1, 1.5] {
        let images = Tensor::from_vec(1, 2, vec![0.0, bad]).unwrap();
        match Pixels::from_tensor(&images) {
            Err(Error::InvalidArgument { message, .. }) => {
                assert!(message.contains("pixel (0, 1)"), "{message}")
            }
            other => panic!("{bad}: expected an error, got {other:?}"),
        }
        assert!(Dataset::new(images, None, 1, 2).is_err());
    }
    assert!(Pixels::from_bytes(2, 3, vec![0; 5]).is_err());
}

/// Splitting byte images by columns matches splitting their float tensor (the SBN's
/// halves), and a split past the last column is a typed error.
#[test]
fn pixels_split_by_columns_like_the_float_halves() {
    let bytes: Vec<u8> = (0..24u8).map(|b| b * 10).collect();
    let images = Pixels::from_bytes(3, 8, bytes).unwrap();
    let (left, right) = images.split_cols(4).unwrap();
    let (upper, lower) = gumbelgrad::models::split_halves(&images.to_tensor::<f32>()).unwrap();
    assert_eq!(left.to_tensor::<f32>(), upper);
    assert_eq!(right.to_tensor::<f32>(), lower);
    assert_eq!(right.row_bytes(2), &[200, 210, 220, 230]);
    let (all, none) = images.split_cols(8).unwrap();
    assert_eq!((all, none.cols()), (images.clone(), 0));
    assert!(matches!(
        images.split_cols(9),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn synthetic_digits_are_deterministic_balanced_and_binary() {
    let small = SyntheticDigits::new(11).with_sizes(300, 50);
    let (train, test) = small.generate();
    assert_eq!(small.generate(), (train.clone(), test.clone()));
    assert_ne!(
        SyntheticDigits::new(12).with_sizes(300, 50).generate().0,
        train
    );
    // A smaller set is a prefix of a larger one.
    let (prefix, _) = SyntheticDigits::new(11).with_sizes(100, 0).generate();
    assert_eq!(prefix, train.take(100));
    assert_ne!(train.take(50).images, test.images, "train and test differ");
    assert_eq!(train.label_counts(), vec![30; 10]);
    assert!(
        train
            .images
            .to_tensor::<f32>()
            .as_slice()
            .iter()
            .all(|&x| x == 0.0 || x == 1.0)
    );
    // Every image has ink, none is mostly ink, and the two outermost rows and columns stay blank (as in MNIST).
    for i in 0..train.len() {
        let ink: f32 = train.images.row_values::<f32>(i).iter().sum();
        assert!(
            (20.0..300.0).contains(&ink),
            "image {i} has {ink} ink pixels"
        );
        let row = train.images.row_values::<f32>(i);
        assert!(row[..56].iter().chain(&row[784 - 56..]).all(|&x| x == 0.0));
        assert!((0..28).all(|r| row[r * 28] == 0.0
            && row[r * 28 + 1] == 0.0
            && row[r * 28 + 27] == 0.0
            && row[r * 28 + 26] == 0.0));
    }
    let (gray, _) = SyntheticDigits::new(11).with_sizes(20, 0).gray().generate();
    assert!(
        gray.images
            .to_tensor::<f32>()
            .as_slice()
            .iter()
            .any(|&x| x > 0.0 && x < 1.0)
    );
}

/// The classes are distinct shapes: a nearest-class-mean classifier fit on the
/// training images labels most test images correctly (chance is 10%).
#[test]
fn synthetic_digit_classes_are_distinguishable() {
    let (train, test) = SyntheticDigits::new(0).with_sizes(2000, 500).generate();
    let mut means = vec![vec![0.0f64; 784]; 10];
    let labels = train.labels.as_ref().unwrap();
    for i in 0..train.len() {
        for (m, &x) in means[labels[i] as usize]
            .iter_mut()
            .zip(&train.images.row_values::<f32>(i))
        {
            *m += x as f64 / 200.0;
        }
    }
    let test_labels = test.labels.as_ref().unwrap();
    let correct = (0..test.len())
        .filter(|&i| {
            let distance = |m: &Vec<f64>| -> f64 {
                m.iter()
                    .zip(&test.images.row_values::<f32>(i))
                    .map(|(a, &b)| (a - b as f64).powi(2))
                    .sum()
            };
            let best = (0..10)
                .min_by(|&a, &b| distance(&means[a]).total_cmp(&distance(&means[b])))
                .unwrap();
            best == test_labels[i] as usize
        })
        .count();
    let accuracy = correct as f64 / test.len() as f64;
    println!("nearest-class-mean accuracy on synthetic digits: {accuracy:.3}");
    assert!(accuracy > 0.8, "accuracy {accuracy}");
}

/// Where the data folder is: $GUMBELGRAD_DATA, else a `shared/data` folder one or two
/// levels above the crate root.
fn shared_data() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("GUMBELGRAD_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared/data"), root.join("../../shared/data")])
        .find(|p| p.is_dir())
}

#[test]
fn real_mnist_files_when_present() {
    let Some(dir) = shared_data() else {
        println!(
            "SKIPPED real_mnist_files_when_present: no shared data folder \
             (set GUMBELGRAD_DATA or put it at ../shared/data)"
        );
        return;
    };
    let test = load_mnist(dir.join("mnist"), MnistSplit::Test).unwrap();
    assert_eq!((test.len(), test.height, test.width), (10_000, 28, 28));
    assert_eq!(test.labels.as_ref().unwrap()[..5], [7, 2, 1, 0, 4]);
    assert_eq!(test.label_counts().iter().sum::<usize>(), 10_000);
    let train = load_mnist(dir.join("mnist"), MnistSplit::Train).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(train.labels.as_ref().unwrap()[..5], [5, 0, 4, 1, 9]);

    let binary = load_binarized_mnist(dir.join("binarized_mnist"), AmatSplit::Test).unwrap();
    assert_eq!(binary.len(), 10_000);
    let mean = binary.images.sum() as f64 / binary.images.len() as f64;
    println!("binarised MNIST test: mean pixel {mean:.4}");
    assert!((0.05..0.25).contains(&mean));
    let valid = load_binarized_mnist(dir.join("binarized_mnist"), AmatSplit::Valid).unwrap();
    assert_eq!(valid.len(), 10_000);
}
