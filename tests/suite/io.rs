//! io: atomic writes, the JSON subset, safetensors (round trip, a byte-exact fixture,
//! a foreign-style fixture, corrupt files), checkpoints, PNG grids, plots.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gumbelgrad::io::json::Json;
use gumbelgrad::io::plot::{PALETTE, format_tick};
use gumbelgrad::io::{
    Checkpoint, LinePlot, ProgressBar, SafetensorsFile, Series, image_grid, save_image_grid,
    write_atomic, write_atomic_with,
};
use gumbelgrad::nn::{Activation, Mlp, Parameters};
use gumbelgrad::optim::{Adam, Optimizer, OptimizerState};
use gumbelgrad::{Error, Tensor};
use rand::SeedableRng;

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gumbelgrad-io-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn entries(dir: &PathBuf) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn atomic_write_replaces_and_leaves_no_temporary_files() {
    let dir = scratch("atomic");
    let path = dir.join("out.bin");
    write_atomic(&path, b"first").unwrap();
    write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(entries(&dir), vec!["out.bin"]);

    // A failing writer leaves the old file untouched and cleans up after itself.
    let result = write_atomic_with(&path, |w| {
        use std::io::Write;
        w.write_all(b"partial")?;
        Err(std::io::Error::other("disk on fire"))
    });
    match result {
        Err(Error::Io { path: p, message }) => {
            assert!(p.ends_with("out.bin") && message.contains("disk on fire"))
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(entries(&dir), vec!["out.bin"]);

    // A missing directory is an Io error naming the file.
    let missing = dir.join("no-such-dir").join("x.bin");
    assert!(matches!(
        write_atomic(&missing, b"x"),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_round_trips_and_rejects_garbage() {
    let text =
        r#" { "a" : [1, -2.5e3, true, false, null], "b\"\\\n": {"\u00e9\ud83d\ude00": "x"} } "#;
    let value = Json::parse(text).unwrap();
    assert_eq!(value.get("a").unwrap().as_array().unwrap().len(), 5);
    assert_eq!(
        value.get("b\"\\\n").unwrap().get("é😀").unwrap().as_str(),
        Some("x")
    );
    assert_eq!(Json::parse(&value.to_string()).unwrap(), value);
    assert_eq!(
        value.to_string(),
        r#"{"a":[1,-2.5e3,true,false,null],"b\"\\\n":{"é😀":"x"}}"#
    );
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\" 1}",
        "01x",
        "\"abc",
        "{} {}",
        "tru",
        "1.",
        "\"\u{1}\"",
    ] {
        assert!(Json::parse(bad).is_err(), "accepted {bad:?}");
    }
    let deep = "[".repeat(1000);
    assert!(Json::parse(&deep).is_err());
}

fn sample_file() -> SafetensorsFile<f32> {
    let mut metadata = BTreeMap::new();
    metadata.insert("step".to_string(), "3".to_string());
    metadata.insert("note".to_string(), "quote \" and ünïcode".to_string());
    SafetensorsFile {
        tensors: vec![
            (
                "encoder.0.weight".to_string(),
                Tensor::from_vec(2, 3, vec![1.0, -2.0, 0.5, 1e-30, f32::MAX, -0.0]).unwrap(),
            ),
            (
                "encoder.0.bias".to_string(),
                Tensor::from_vec(1, 3, vec![0.1, 0.2, 0.3]).unwrap(),
            ),
            ("empty".to_string(), Tensor::zeros(0, 4)),
        ],
        metadata,
    }
}

#[test]
fn safetensors_round_trips_through_a_file() {
    let dir = scratch("safetensors");
    let path = dir.join("model.safetensors");
    let file = sample_file();
    file.save(&path).unwrap();
    let back = SafetensorsFile::<f32>::load(&path).unwrap();
    assert_eq!(back, file);
    // Bits are preserved (including -0.0).
    let bits = |t: &Tensor<f32>| t.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(back.get("encoder.0.weight").unwrap()),
        bits(file.get("encoder.0.weight").unwrap())
    );

    // f64 tensors are written as F64 and read back exactly.
    let wide = SafetensorsFile::<f64> {
        tensors: vec![(
            "x".to_string(),
            Tensor::from_vec(1, 2, vec![std::f64::consts::PI, 1e-300]).unwrap(),
        )],
        metadata: BTreeMap::new(),
    };
    let bytes = wide.to_bytes().unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("\"F64\""));
    assert_eq!(
        SafetensorsFile::<f64>::from_bytes(&bytes, "mem").unwrap(),
        wide
    );
    // and read as f32 they round.
    let narrow = SafetensorsFile::<f32>::from_bytes(&bytes, "mem").unwrap();
    assert_eq!(narrow.get("x").unwrap().as_slice()[0], std::f32::consts::PI);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The writer's output for a tiny file, spelled out byte by byte from the format
/// specification.
#[test]
fn safetensors_bytes_match_a_hand_built_fixture() {
    let mut metadata = BTreeMap::new();
    metadata.insert("epoch".to_string(), "2".to_string());
    let file = SafetensorsFile::<f32> {
        tensors: vec![
            (
                "w".to_string(),
                Tensor::from_vec(1, 2, vec![1.0, -2.0]).unwrap(),
            ),
            ("b".to_string(), Tensor::from_vec(1, 1, vec![0.5]).unwrap()),
        ],
        metadata,
    };
    let header = br#"{"__metadata__":{"epoch":"2"},"w":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}}"#;
    let mut expected = Vec::new();
    let padded = header.len().div_ceil(8) * 8; // padded with spaces to 8-byte alignment
    expected.extend_from_slice(&(padded as u64).to_le_bytes());
    expected.extend_from_slice(header);
    expected.resize(8 + padded, b' ');
    expected.extend_from_slice(&[0x00, 0x00, 0x80, 0x3f]); // 1.0f32, little-endian
    expected.extend_from_slice(&[0x00, 0x00, 0x00, 0xc0]); // -2.0f32
    expected.extend_from_slice(&[0x00, 0x00, 0x00, 0x3f]); // 0.5f32
    assert_eq!(file.to_bytes().unwrap(), expected);
}

/// A file as another writer might produce it: whitespace in the header, keys in
/// another order, no padding, data not in header order, a 1-D and a 0-D shape, F64.
#[test]
fn safetensors_reads_a_foreign_style_file() {
    let header = br#"{ "bias": {"shape": [3], "data_offsets": [16, 40], "dtype": "F64"},
                      "scale": {"data_offsets": [0, 8], "dtype": "F64", "shape": []},
                      "pad": {"dtype": "F64", "shape": [1, 1], "data_offsets": [8, 16]},
                      "__metadata__": {"format": "pt"} }"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    for x in [2.0f64, 7.0, 1.0, 2.0, 3.0] {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let file = SafetensorsFile::<f64>::from_bytes(&bytes, "foreign.safetensors").unwrap();
    let names: Vec<&str> = file.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["scale", "pad", "bias"]); // data order
    assert_eq!(
        file.get("bias").unwrap().shape(),
        gumbelgrad::Shape::new(1, 3)
    );
    assert_eq!(file.get("bias").unwrap().as_slice(), &[1.0, 2.0, 3.0]);
    assert_eq!(file.get("scale").unwrap().as_slice(), &[2.0]);
    assert_eq!(file.metadata["format"], "pt");
}

fn expect_bad_file(bytes: &[u8], needle: &str) {
    match SafetensorsFile::<f32>::from_bytes(bytes, "corrupt.safetensors") {
        Err(Error::BadFile { path, message }) => {
            assert_eq!(path, "corrupt.safetensors");
            assert!(
                message.contains(needle),
                "message {message:?} should mention {needle:?}"
            );
        }
        other => panic!("expected BadFile mentioning {needle:?}, got {other:?}"),
    }
}

fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn corrupt_safetensors_files_are_typed_errors() {
    let good = sample_file().to_bytes().unwrap();
    expect_bad_file(&good[..5], "shorter than the 8-byte header length");
    expect_bad_file(&good[..40], "does not fit");
    expect_bad_file(&good[..good.len() - 1], "truncated");
    let mut extra = good.clone();
    extra.push(0);
    expect_bad_file(&extra, "trailing");
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_bad_file(&huge, "does not fit");

    let entry = |dtype: &str, shape: &str, offsets: &str| {
        format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}}}"#)
    };
    expect_bad_file(&with_header("{not json", &[]), "invalid JSON");
    expect_bad_file(&with_header("[1, 2]", &[]), "not a JSON object");
    expect_bad_file(
        &with_header(&entry("F16", "[1,1]", "[0,2]"), &[0; 2]),
        "F16",
    );
    expect_bad_file(
        &with_header(&entry("F32", "[2,2]", "[0,8]"), &[0; 8]),
        "do not hold",
    );
    expect_bad_file(
        &with_header(&entry("F32", "[1,2,2]", "[0,16]"), &[0; 16]),
        "ranks",
    );
    expect_bad_file(
        &with_header(&entry("F32", "[1,2]", "[0]"), &[0; 8]),
        "data_offsets",
    );
    expect_bad_file(
        &with_header(&entry("F32", "[1,2]", "[4,12]"), &[0; 12]),
        "gap",
    );
    expect_bad_file(
        &with_header(&entry("F32", "[\"a\"]", "[0,4]"), &[0; 4]),
        "shape",
    );
    expect_bad_file(
        &with_header(r#"{"__metadata__":{"a":1}}"#, &[]),
        "not a string",
    );
    let twice = r#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    expect_bad_file(&with_header(twice, &[0; 8]), "twice");
    let mut not_utf8 = with_header("{}", &[]);
    not_utf8[8] = 0xff;
    expect_bad_file(&not_utf8, "UTF-8");

    // Reading a missing file is an Io error naming it.
    assert!(matches!(
        SafetensorsFile::<f32>::load("/definitely/not/here.safetensors"),
        Err(Error::Io { .. })
    ));
    // Writing refuses duplicate names.
    let mut dup = sample_file();
    dup.tensors.push(dup.tensors[0].clone());
    assert!(dup.to_bytes().is_err());
}

/// Model parameters and Adam state saved to a checkpoint and loaded back are equal
/// bit for bit.
#[test]
fn checkpoint_holds_parameters_optimizer_state_and_metadata() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut params = Parameters::<f32>::new();
    Mlp::new(
        &mut params,
        "decoder",
        &[4, 6, 3],
        Activation::Relu,
        &mut rng,
    )
    .unwrap();
    let mut adam = Adam::<f32>::new(1e-3);
    let grads = gumbelgrad::nn::Gradients::from_tensors(
        params
            .iter()
            .map(|(_, p)| p.map(|x| x * 0.5 + 0.1))
            .collect(),
    );
    adam.step(&mut params, &grads).unwrap();

    let mut checkpoint = Checkpoint::<f32>::new();
    checkpoint.extend(params.iter().map(|(n, t)| (n.to_string(), t.clone())));
    let state = adam.state(&params);
    checkpoint.extend(state.tensors.clone());
    checkpoint.set_u64("optimizer_steps", state.steps);
    checkpoint.set_f64("temperature", 0.887_f64);
    checkpoint.set_bytes("rng_state", &[0, 1, 254, 255]);

    let dir = scratch("checkpoint");
    let path = dir.join("ckpt.safetensors");
    checkpoint.save(&path).unwrap();
    let back = Checkpoint::<f32>::load(&path).unwrap();
    assert_eq!(back, checkpoint);
    assert_eq!(
        back.f64("temperature").unwrap().to_bits(),
        0.887f64.to_bits()
    );
    assert_eq!(back.bytes("rng_state").unwrap(), vec![0, 1, 254, 255]);
    assert!(back.tensor("adam.m.decoder.1.bias").is_ok());

    let mut restored = Adam::<f32>::new(1e-3);
    let loaded_state = OptimizerState {
        steps: back.u64("optimizer_steps").unwrap(),
        tensors: back
            .tensors()
            .iter()
            .filter(|(n, _)| n.starts_with("adam."))
            .cloned()
            .collect(),
    };
    restored.load_state(&params, &loaded_state).unwrap();
    assert_eq!(restored, adam);
    assert!(matches!(
        back.u64("missing"),
        Err(Error::InvalidArgument { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_grid_lays_out_cells_and_writes_a_decodable_png() {
    // Image i is filled with the value i / 4; padding 2; 3 columns -> 2 rows.
    let images = Tensor::<f32>::from_vec(
        5,
        6,
        (0..5)
            .flat_map(|i| std::iter::repeat_n(i as f32 / 4.0, 6))
            .collect(),
    )
    .unwrap();
    let grid = image_grid(&images, 2, 3, 3, 2).unwrap();
    assert_eq!((grid.width, grid.height), (3 * 5 + 2, 2 * 4 + 2));
    let at = |x: usize, y: usize| grid.pixels[y * grid.width + x];
    assert_eq!(at(0, 0), 128); // padding
    assert_eq!(at(2, 2), 0); // image 0, top-left
    assert_eq!(at(7, 3), 64); // image 1 (0.25)
    assert_eq!(at(12, 2), 128); // image 2 (0.5 -> 127.5 rounds to 128)
    assert_eq!(at(2, 6), 191); // image 3 (0.75)
    assert_eq!(at(7, 7), 255); // image 4 (1.0)
    assert_eq!(at(12, 6), 128); // empty cell: padding gray

    let dir = scratch("png");
    let path = dir.join("grid.png");
    save_image_grid(&path, &images, 2, 3, 3, 2).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!(
        (info.width as usize, info.height as usize),
        (grid.width, grid.height)
    );
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(&buffer[..info.buffer_size()], &grid.pixels[..]);

    assert!(image_grid(&images, 2, 2, 3, 2).is_err()); // 4 != 6 columns
    let nan = Tensor::<f32>::from_vec(1, 1, vec![f32::NAN]).unwrap();
    assert!(matches!(
        image_grid(&nan, 1, 1, 1, 0),
        Err(Error::NonFiniteInput { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plot_draws_axes_and_series() {
    let falling = Series::from_values("train", &[300.0, 200.0, 150.0, 130.0, 120.0]);
    let flat = Series::new("test", vec![(0.0, 140.0), (2.0, f64::NAN), (4.0, 140.0)]);
    let plot = LinePlot::new(320, 200).series(falling).series(flat);
    let image = plot.render().unwrap();
    let count = |colour: [u8; 3]| image.pixels.iter().filter(|&&p| p == colour).count();
    assert!(count(PALETTE[0]) > 200, "first series drawn");
    assert!(count(PALETTE[1]) > 0, "second series drawn");
    assert!(count([0, 0, 0]) > 300, "axes and labels drawn");
    let dir = scratch("plot");
    plot.save(dir.join("loss.png")).unwrap();
    assert!(std::fs::metadata(dir.join("loss.png")).unwrap().len() > 100);
    assert!(
        LinePlot::new(10, 10)
            .series(Series::from_values("a", &[1.0]))
            .render()
            .is_err()
    );
    assert!(LinePlot::new(300, 200).render().is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tick_labels_are_short() {
    assert_eq!(format_tick(0.0), "0");
    assert_eq!(format_tick(124.26), "124.3");
    assert_eq!(format_tick(5000.0), "5000");
    assert_eq!(format_tick(0.887), "0.887");
    assert_eq!(format_tick(-1.5), "-1.5");
    assert_eq!(format_tick(1.0e-5), "1e-5");
    assert_eq!(format_tick(2.5e7), "2.5e7");
}

#[test]
fn progress_line_shows_position_and_message() {
    let mut bar = ProgressBar::new(10).hidden();
    bar.set(5, "loss 1.0");
    let line = bar.line("loss 1.0");
    assert!(
        line.starts_with("[###############...............] 5/10"),
        "{line}"
    );
    assert!(line.ends_with("loss 1.0"));
}

/// Any set of tensors with any shapes (including empty ones) and any metadata reads
/// back exactly, in f32 and f64.
#[test]
fn safetensors_round_trips_random_contents() {
    use gumbelgrad::testing::config;
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;
    let tensor = (0usize..4, 0usize..5).prop_flat_map(|(r, c)| {
        proptest::collection::vec(-1e6f64..1e6, r * c)
            .prop_map(move |data| Tensor::from_vec(r, c, data).unwrap())
    });
    let strategy = (
        proptest::collection::vec(tensor, 0..5),
        proptest::collection::btree_map("[a-z\"\\\\é ]{0,6}", "[ -~é\n]{0,8}", 0..3),
    );
    let mut runner = TestRunner::new(config(48));
    runner
        .run(&strategy, |(tensors, metadata)| {
            let wide = SafetensorsFile::<f64> {
                tensors: tensors
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("layer.{i}.weight"), t.clone()))
                    .collect(),
                metadata: metadata.clone(),
            };
            let bytes = wide.to_bytes().unwrap();
            prop_assert_eq!(bytes.len() % 8, 0);
            prop_assert_eq!(
                &SafetensorsFile::<f64>::from_bytes(&bytes, "p").unwrap(),
                &wide
            );
            let narrow = SafetensorsFile::<f32> {
                tensors: wide
                    .tensors
                    .iter()
                    .map(|(n, t)| (n.clone(), t.cast()))
                    .collect(),
                metadata,
            };
            let bytes = narrow.to_bytes().unwrap();
            prop_assert_eq!(
                &SafetensorsFile::<f32>::from_bytes(&bytes, "p").unwrap(),
                &narrow
            );
            Ok(())
        })
        .unwrap();
}
