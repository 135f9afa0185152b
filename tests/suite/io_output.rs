//! What the examples' output is built from: atomic-write checks and clean-up, JSON
//! numbers, SVG plots and figures, the progress line.

use std::path::PathBuf;

use gumbelgrad::Tensor;
use gumbelgrad::io::atomic::{check_writable, remove_stale_temporaries};
use gumbelgrad::io::json::Json;
use gumbelgrad::io::{GridFigure, LinePlot, ProgressBar, Series, image_grid};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gumbelgrad-io-output-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn check_writable_refuses_a_folder_and_a_missing_parent_and_leaves_nothing() {
    let dir = folder("writable");
    check_writable(dir.join("file.bin")).unwrap();
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "left a file behind"
    );
    std::fs::create_dir(dir.join("taken")).unwrap();
    let error = check_writable(dir.join("taken")).unwrap_err().to_string();
    assert!(error.contains("is a folder"), "{error}");
    assert!(check_writable(dir.join("missing").join("file.bin")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stale_temporaries_of_dead_processes_are_removed_and_no_others() {
    let dir = folder("stale");
    let target = dir.join("metrics.jsonl");
    let dead = dir.join(format!(".metrics.jsonl.tmp.{}.3", u32::MAX - 1));
    let ours = dir.join(format!(".metrics.jsonl.tmp.{}.0", std::process::id()));
    let other_file = dir.join(format!(".loss.svg.tmp.{}.0", u32::MAX - 1));
    let not_a_temporary = dir.join(".metrics.jsonl.tmp.notapid.0");
    for path in [&dead, &ours, &other_file, &not_a_temporary] {
        std::fs::write(path, b"x").unwrap();
    }
    let removed = remove_stale_temporaries(&target).unwrap();
    if std::path::Path::new("/proc/self").exists() {
        assert_eq!(removed, 1);
        assert!(!dead.exists());
    } else {
        assert_eq!(removed, 0, "without /proc nothing can be known dead");
    }
    assert!(ours.exists() && other_file.exists() && not_a_temporary.exists());
    // A folder that does not exist has nothing to clean.
    assert_eq!(
        remove_stale_temporaries(dir.join("no").join("file")).unwrap(),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_numbers_read_back_bit_for_bit_and_non_finite_ones_are_null() {
    let mut rng = StdRng::seed_from_u64(5);
    let specials = [
        0.0,
        -0.0,
        1.0,
        0.1,
        1e-7,
        1e300,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        -2.5,
    ];
    let random = (0..2000).map(|_| f64::from_bits(rng.random::<u64>()));
    for value in specials.into_iter().chain(random) {
        let text = Json::from_f64(value).to_string();
        if value.is_finite() {
            let parsed = Json::parse(&text).unwrap_or_else(|e| panic!("{value:e} -> {text}: {e}"));
            assert_eq!(
                parsed.as_f64().map(f64::to_bits),
                Some(value.to_bits()),
                "{text}"
            );
        } else {
            assert_eq!(text, "null", "{value}");
        }
    }
}

#[test]
fn svg_line_plot_names_everything_as_text() {
    let falling = Series::new(
        "train <relaxed> & smoothed",
        (0..50)
            .map(|t| (t as f64, 100.0 / (1.0 + t as f64)))
            .collect(),
    );
    let broken = Series::new(
        "test",
        vec![(0.0, 50.0), (10.0, f64::NAN), (20.0, 30.0), (40.0, 20.0)],
    );
    let svg = LinePlot::new(640, 400)
        .title("Loss")
        .x_label("step")
        .y_label("nats")
        .series(falling)
        .series(broken)
        .to_svg()
        .unwrap();
    for text in [
        ">Loss</text>",
        ">step</text>",
        ">nats</text>",
        ">train &lt;relaxed&gt; &amp; smoothed</text>",
        ">test</text>",
    ] {
        assert!(svg.contains(text), "missing {text}");
    }
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    // The NaN breaks the test series into a single point and a two-point line.
    assert_eq!(svg.matches("<polyline").count(), 1 + 3);
    let ticks = svg.matches("text-anchor=\"middle\">").count();
    assert!(ticks >= 4, "too few labelled ticks: {ticks}");
    assert!(
        LinePlot::new(640, 400)
            .series(Series::new("nan", vec![(0.0, f64::NAN)]))
            .to_svg()
            .is_err()
    );
    assert!(
        LinePlot::new(50, 50)
            .series(Series::from_values("a", &[1.0, 2.0]))
            .to_svg()
            .is_err()
    );
}

#[test]
fn grid_figure_labels_rows_and_columns() {
    let grid = image_grid(&Tensor::<f32>::zeros(6, 4), 2, 2, 3, 1).unwrap();
    let svg = GridFigure::new(grid, 2, 2, 1)
        .title("T")
        .row_labels(["r1", "r2"])
        .column_labels(["c1", "c2", "c3"])
        .caption("about")
        .to_svg()
        .unwrap();
    for text in [
        ">T</text>",
        ">r1</text>",
        ">r2</text>",
        ">c1</text>",
        ">c3</text>",
        ">about</text>",
    ] {
        assert!(svg.contains(text), "missing {text}");
    }
}

#[test]
fn progress_line_has_an_eta() {
    let mut bar = ProgressBar::new(10).hidden().unit("images");
    assert!(bar.line("x").contains("ETA ?"));
    std::thread::sleep(std::time::Duration::from_millis(5));
    bar.set(5, "x");
    let line = bar.line("x");
    assert!(line.contains(" images/s  ETA 0:0"), "{line}");
    assert!(bar.eta().is_some());
}
