//! The leaderboard runner: its cells are exactly the estimators that fit each model,
//! the temperature rule, a cell killed mid-run and rerun gives the same bits as an
//! uninterrupted one without retraining finished work, and the gradient variance is
//! what its definition says.

use gumbelgrad::Tape;
use gumbelgrad::data::{Dataset, SyntheticDigits};
use gumbelgrad::estimators::{ESTIMATOR_NAMES, Estimator, GradientEstimator};
use gumbelgrad::io::json::Json;
use gumbelgrad::models::seeds::{Stream, rng_for};
use gumbelgrad::models::{DiscreteVae, Latent, VaeConfig};
use gumbelgrad::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// The runner is a program (examples/leaderboard), not library API: its modules are
// compiled into this test. The Table 1 cells and the command-line module they use are
// compiled once into the suite (`main.rs`); `cell.rs` finds them here as its siblings.
#[path = "../../examples/leaderboard/cell.rs"]
mod cell;
use crate::cli;
use crate::table1_cells as table1;
#[path = "../../examples/leaderboard/variance.rs"]
mod variance;

use cell::{Cell, Event, MODELS, Protocol, Splits, estimators_of, run_cell};
use table1::{Budget, ResultsFile};
use variance::{VARIANCE_STREAM, VarianceSetup, encoder_gradient_variance};

#[test]
fn the_cells_are_every_estimator_that_fits_each_model() {
    let cells = Cell::all();
    let categorical = Latent::Categorical {
        variables: 1,
        classes: 3,
    };
    let binary = Latent::Bernoulli { units: 2 };
    let mut expected = 0;
    for model in MODELS {
        let latent = if model.contains("Bern.") {
            binary
        } else {
            categorical
        };
        for name in ESTIMATOR_NAMES {
            let estimator = Estimator::<f32>::from_name(name, 1.0).unwrap();
            let fits = latent.check_estimator(&estimator, "test").is_ok();
            let label = format!("{model}:{name}");
            assert_eq!(Cell::parse(&label).is_ok(), fits, "{label}");
            assert_eq!(
                cells.iter().any(|c| c.label() == label),
                fits,
                "{label} in Cell::all"
            );
            expected += usize::from(fits);
        }
    }
    assert_eq!(cells.len(), expected);
    // both relaxations are there, each on its own model; score-function ones on both
    assert!(estimators_of("VAE Cat.").contains(&"gumbel-softmax"));
    assert!(!estimators_of("VAE Cat.").contains(&"relaxed-bernoulli"));
    assert!(estimators_of("VAE Bern.").contains(&"relaxed-bernoulli"));
    assert!(estimators_of("VAE Bern.").contains(&"disarm"));
    assert!(estimators_of("VAE Cat.").contains(&"disarm"));
    assert_eq!(
        Cell::parse(" vae cat. : Gumbel-Softmax ").unwrap(),
        Cell {
            model: "VAE Cat.",
            estimator: "gumbel-softmax"
        }
    );
    for bad in [
        "VAE Bern.:gumbel-softmax",
        "VAE Cat.:nope",
        "SBN Cat.:nvil",
        "VAE Cat. nvil",
    ] {
        let error = Cell::parse(bad).unwrap_err().to_string();
        assert!(!error.is_empty(), "{bad}");
    }
    assert!(
        Cell::parse("VAE Bern.:gumbel-softmax")
            .unwrap_err()
            .to_string()
            .contains("does not fit")
    );
    assert_eq!(cells[0].slug(), "vae-cat-gumbel-softmax");
}

#[test]
fn estimators_with_a_temperature_anneal_except_rebar_relax_and_reinmax() {
    let annealed = table1::annealed_temperature(table1::ANNEAL_RATE).unwrap();
    for cell in Cell::all() {
        let schedule = cell.temperature().unwrap();
        let has_one = Estimator::<f32>::from_name(cell.estimator, 1.0)
            .unwrap()
            .temperature()
            .is_some();
        if cell.estimator == "reinmax" {
            // Its authors' constant, never below 1 (their package rejects tau < 1).
            let tau = schedule.at(0).unwrap();
            assert!(tau >= 1.0, "{}", cell.label());
            assert_eq!(schedule.at(100_000).unwrap(), tau, "{}", cell.label());
        } else if has_one && !matches!(cell.estimator, "rebar" | "relax") {
            assert_eq!(schedule, annealed, "{}", cell.label());
        } else {
            for step in [0, 1000, 100_000] {
                assert_eq!(schedule.at(step).unwrap(), 1.0, "{}", cell.label());
            }
        }
    }
    let at = |model, estimator| {
        cell::temperature_for(model, estimator)
            .unwrap()
            .at(10_000)
            .unwrap()
    };
    assert!(at("VAE Cat.", "gumbel-softmax") < 1.0);
    assert_eq!(at("VAE Cat.", "reinmax"), 1.3);
    assert_eq!(at("VAE Bern.", "reinmax"), 1.1);
    assert_eq!(at("VAE Cat.", "relax"), 1.0);
    // Every entry of the table names a cell that exists.
    for &(model, estimator, _) in cell::AUTHORS_TEMPERATURE {
        assert!(Cell::parse(&format!("{model}:{estimator}")).is_ok());
    }
}

/// Tiny data: 60 training, 20 validation and 20 test synthetic digits.
fn tiny_data() -> (Dataset, Dataset, Dataset) {
    let (train, test) = SyntheticDigits::new(5).with_sizes(80, 20).generate();
    let (train, valid) = train.split_validation(20, 5).unwrap();
    (train, valid, test)
}

fn tiny_protocol() -> Protocol {
    Protocol {
        budget: Budget {
            epochs: 2,
            batch_size: 20,
            learning_rate: 1e-3,
            eval_samples: 3,
            seed: 3,
        },
        lr_grid: vec![1e-3, 3e-3],
        valid_samples: 2,
        variance: VarianceSetup {
            warmup: 2,
            samples: 3,
            batch: 10,
        },
    }
}

fn work_folder(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gumbelgrad-leaderboard-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An event callback that records the events and stops the run (as a kill right after
/// it would) at `target`.
fn stop_at(
    target: Event,
    seen: &mut Vec<Event>,
) -> impl FnMut(Event) -> gumbelgrad::Result<()> + '_ {
    move |event: Event| {
        let stop = event == target;
        seen.push(event);
        if stop {
            Err(gumbelgrad::Error::invalid_argument("test", "stopped"))
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_cell_killed_mid_run_and_rerun_gives_the_same_bits_without_retraining() {
    let (train, valid, test) = tiny_data();
    let data = Splits {
        train: &train.images,
        valid: &valid.images,
        test: &test.images,
    };
    let protocol = tiny_protocol();
    // REBAR keeps state (its tuned eta and temperature, their Adam moments) that a
    // resume must restore.
    let cell = Cell::parse("VAE Cat.:rebar").unwrap();

    let whole_dir = work_folder("whole");
    let mut events = Vec::new();
    let whole = run_cell(&cell, &protocol, data, &whole_dir, "test", &mut |e| {
        events.push(e);
        Ok(())
    })
    .unwrap();
    let epochs = |events: &[Event]| {
        events
            .iter()
            .filter(|e| matches!(e, Event::Epoch { .. }))
            .count()
    };
    // two candidates of two epochs, and the reference checkpoint's one epoch
    assert_eq!(epochs(&events), 5, "{events:?}");

    let dir = work_folder("killed");
    // killed after epoch 1 of 2 of the first learning rate ...
    let mut seen = Vec::new();
    let mut stop = |event: Event| {
        let at =
            matches!(event, Event::Epoch { learning_rate: Some(r), epoch: 1, .. } if r == 1e-3);
        seen.push(event);
        if at {
            Err(gumbelgrad::Error::invalid_argument("test", "stopped"))
        } else {
            Ok(())
        }
    };
    assert!(run_cell(&cell, &protocol, data, &dir, "test", &mut stop).is_err());
    assert_eq!(epochs(&seen), 1, "{seen:?}");
    // ... then after epoch 1 of the second, once the first is finished and scored ...
    let mut seen = Vec::new();
    let mut stop = |event: Event| {
        let at =
            matches!(event, Event::Epoch { learning_rate: Some(r), epoch: 1, .. } if r == 3e-3);
        seen.push(event);
        if at {
            Err(gumbelgrad::Error::invalid_argument("test", "stopped"))
        } else {
            Ok(())
        }
    };
    assert!(run_cell(&cell, &protocol, data, &dir, "test", &mut stop).is_err());
    assert_eq!(
        seen[0],
        Event::Resumed {
            learning_rate: Some(1e-3),
            epoch: 1
        }
    );
    assert_eq!(epochs(&seen), 2, "{seen:?}");
    // ... then while the variance is measured (the test bound is already saved).
    let mut seen = Vec::new();
    let mut stop = stop_at(Event::Variance, &mut seen);
    assert!(run_cell(&cell, &protocol, data, &dir, "test", &mut stop).is_err());
    drop(stop);
    assert!(
        seen.contains(&Event::Candidate {
            learning_rate: 1e-3,
            valid_nats: whole.selection.candidates[0].1,
            saved: true
        }),
        "{seen:?}"
    );
    assert!(seen.contains(&Event::Resumed {
        learning_rate: Some(3e-3),
        epoch: 1
    }));
    assert!(seen.contains(&Event::Testing));
    assert_eq!(
        epochs(&seen),
        2,
        "second rate's epoch 2 and the reference's epoch 1"
    );

    let mut seen = Vec::new();
    let resumed = run_cell(&cell, &protocol, data, &dir, "test", &mut |e| {
        seen.push(e);
        Ok(())
    })
    .unwrap();
    // nothing retrained, the test bound not recomputed
    assert_eq!(epochs(&seen), 0, "{seen:?}");
    assert!(!seen.contains(&Event::Testing));
    assert!(seen.contains(&Event::Variance));
    assert_eq!(resumed.nats.to_bits(), whole.nats.to_bits());
    assert_eq!(
        resumed.grad_variance.to_bits(),
        whole.grad_variance.to_bits()
    );
    assert_eq!(resumed.learning_rate, whole.learning_rate);
    assert_eq!(resumed.selection, whole.selection);
    assert!(whole.nats.is_finite() && whole.nats > 0.0);
    assert!(whole.grad_variance.is_finite() && whole.grad_variance > 0.0);

    // A run asking for fewer epochs than a checkpoint holds is an error naming it.
    let shorter = Protocol {
        budget: Budget {
            epochs: 1,
            ..protocol.budget.clone()
        },
        ..protocol.clone()
    };
    let error = run_cell(&cell, &shorter, data, &dir, "test", &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("checkpoint.safetensors"), "{error}");
    // Another batch size is refused by the trainer's settings check, naming the file.
    let other_batch = Protocol {
        budget: Budget {
            batch_size: 10,
            ..protocol.budget.clone()
        },
        ..protocol.clone()
    };
    let error = run_cell(&cell, &other_batch, data, &dir, "test", &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("batch_size"), "{error}");
    std::fs::remove_dir_all(&whole_dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn results_have_the_leaderboard_keys_and_merge_in_table_order() {
    let (train, valid, test) = tiny_data();
    let data = Splits {
        train: &train.images,
        valid: &valid.images,
        test: &test.images,
    };
    let protocol = Protocol {
        budget: Budget {
            epochs: 1,
            ..tiny_protocol().budget
        },
        lr_grid: vec![1e-3],
        ..tiny_protocol()
    };
    let dir = work_folder("keys");
    let path = dir.join("leaderboard.json");
    for label in ["VAE Bern.:disarm", "VAE Cat.:gumbel-softmax", "VAE Cat.:st"] {
        let cell = Cell::parse(label).unwrap();
        let result =
            run_cell(&cell, &protocol, data, &dir, "the command", &mut |_| Ok(())).unwrap();
        let mut table = ResultsFile::load(&path).unwrap();
        table.insert_entry(result.to_json(), MODELS, ESTIMATOR_NAMES);
        table.save(&path).unwrap();
    }
    let table = ResultsFile::load(&path).unwrap();
    let order: Vec<String> = table
        .entries()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.get("model").unwrap().as_str().unwrap(),
                e.get("estimator").unwrap().as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        ["VAE Cat.:gumbel-softmax", "VAE Cat.:st", "VAE Bern.:disarm"]
    );
    let entry = &table.entries()[2];
    let keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "model",
            "estimator",
            "nats",
            "eval_samples",
            "epochs",
            "train_seconds",
            "grad_variance",
            "command",
            "learning_rate",
            "seed",
            "valid_samples",
            "lr_grid",
            "variance_warmup",
            "variance_samples"
        ]
    );
    assert_eq!(entry.get("eval_samples").and_then(Json::as_u64), Some(3));
    assert_eq!(
        entry.get("variance_samples").and_then(Json::as_u64),
        Some(3)
    );
    assert_eq!(
        entry.get("command").and_then(Json::as_str),
        Some("the command")
    );
    assert!(
        entry
            .get("grad_variance")
            .and_then(Json::as_f64)
            .is_some_and(|v| v > 0.0)
    );
    // a replaced entry stays one entry
    let cell = Cell::parse("VAE Cat.:st").unwrap();
    let again = run_cell(&cell, &protocol, data, &dir, "again", &mut |_| Ok(())).unwrap();
    let mut table = ResultsFile::load(&path).unwrap();
    table.insert_entry(again.to_json(), MODELS, ESTIMATOR_NAMES);
    assert_eq!(table.entries().len(), 3);
    assert_eq!(
        table
            .get_entry("VAE Cat.", "st")
            .and_then(|e| e.get("command"))
            .and_then(Json::as_str),
        Some("again")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A small VAE and 8 random binary images of 6 pixels.
fn tiny_model(latent: Latent) -> (DiscreteVae<f32>, Tensor<f32>) {
    let mut rng = StdRng::seed_from_u64(11);
    let config = VaeConfig {
        input_dim: 6,
        latent,
        encoder_hidden: vec![5],
        decoder_hidden: vec![5],
    };
    let model = DiscreteVae::<f32>::new(config, &mut rng).unwrap();
    let pixels = (0..48)
        .map(|_| if rng.random::<bool>() { 1.0 } else { 0.0 })
        .collect();
    (model, Tensor::from_vec(8, 6, pixels).unwrap())
}

const CATEGORICAL: Latent = Latent::Categorical {
    variables: 2,
    classes: 3,
};

fn variance_of(name: &str, latent: Latent, setup: &VarianceSetup) -> f64 {
    let (model, images) = tiny_model(latent);
    let mut estimator = Estimator::<f32>::from_name(name, 1.0).unwrap();
    encoder_gradient_variance(&model, &mut estimator, &images, setup, 7).unwrap()
}

#[test]
fn the_gradient_variance_is_zero_for_a_deterministic_estimator_and_larger_for_reinforce() {
    let setup = VarianceSetup {
        warmup: 3,
        samples: 50,
        batch: 8,
    };
    // ST argmax has no noise: every draw is the same gradient.
    assert_eq!(variance_of("st-argmax", CATEGORICAL, &setup), 0.0);
    let relaxed = variance_of("gumbel-softmax", CATEGORICAL, &setup);
    let score = variance_of("reinforce", CATEGORICAL, &setup);
    assert!(relaxed > 0.0);
    assert!(
        score > 2.0 * relaxed,
        "reinforce {score}, gumbel-softmax {relaxed}"
    );
    let binary = Latent::Bernoulli { units: 4 };
    let relaxed = variance_of("relaxed-bernoulli", binary, &setup);
    let score = variance_of("reinforce", binary, &setup);
    assert!(
        score > 2.0 * relaxed,
        "reinforce {score}, relaxed-bernoulli {relaxed}"
    );
    // DisARM's antithetic pairs beat plain REINFORCE
    assert!(variance_of("disarm", binary, &setup) < score);

    let (model, images) = tiny_model(CATEGORICAL);
    let mut estimator = Estimator::<f32>::from_name("gumbel-softmax", 1.0).unwrap();
    let one = VarianceSetup {
        samples: 1,
        ..setup
    };
    assert!(encoder_gradient_variance(&model, &mut estimator, &images, &one, 7).is_err());
}

/// The one-pass figure is the two-pass textbook formula on the same draws, and only
/// encoder coordinates count.
#[test]
fn the_gradient_variance_is_the_mean_per_coordinate_sample_variance_of_the_encoder() {
    let setup = VarianceSetup {
        warmup: 2,
        samples: 6,
        batch: 8,
    };
    let (model, images) = tiny_model(CATEGORICAL);
    let mut estimator = Estimator::<f32>::from_name("gumbel-softmax", 0.7).unwrap();
    let measured = encoder_gradient_variance(&model, &mut estimator, &images, &setup, 9).unwrap();

    let mut estimator = Estimator::<f32>::from_name("gumbel-softmax", 0.7).unwrap();
    let mut draws: Vec<Vec<f64>> = Vec::new();
    for draw in 0..setup.warmup + setup.samples {
        let tape = Tape::new();
        let params = model.parameters().bind(&tape);
        let x = tape.constant(&images);
        let mut rng = rng_for(9, Stream::Eval, VARIANCE_STREAM + draw as u64);
        let terms = model.negative_elbo(&params, x, &mut estimator, &mut rng);
        tape.backward(terms.loss).unwrap();
        if draw < setup.warmup {
            continue;
        }
        let grads = params.gradients();
        let mut flat = Vec::new();
        for name in model.parameters().names() {
            if name.starts_with("encoder.") {
                let id = model.parameters().id(name).unwrap();
                flat.extend(grads.get(id).as_slice().iter().map(|&g| f64::from(g)));
            }
        }
        draws.push(flat);
    }
    let width = draws[0].len();
    // 6 -> 5 -> 6 encoder: weights and biases
    assert_eq!(width, 6 * 5 + 5 + 5 * 6 + 6);
    let s = draws.len() as f64;
    let mut total = 0.0;
    for j in 0..width {
        let mean = draws.iter().map(|d| d[j]).sum::<f64>() / s;
        total += draws.iter().map(|d| (d[j] - mean).powi(2)).sum::<f64>() / (s - 1.0);
    }
    let expected = total / width as f64;
    assert!(
        (measured - expected).abs() <= 1e-9 * expected,
        "{measured} vs {expected}"
    );
}

/// The published results (`docs/results/leaderboard.json`, and `docs/leaderboard.md`
/// made from it by `--markdown`): every entry is a cell of the full protocol, its
/// chosen learning rate is the best of its grid on validation, its command is the
/// cell's, and the page shows its figure.
#[test]
fn the_published_leaderboard_holds_full_protocol_cells() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("docs/results/leaderboard.json");
    if !path.exists() {
        eprintln!("skipped: {} does not exist", path.display());
        return;
    }
    let table = ResultsFile::load(&path).unwrap();
    let page = std::fs::read_to_string(root.join("docs/leaderboard.md")).unwrap();
    let number = |entry: &Json, key: &str| {
        entry
            .get(key)
            .and_then(Json::as_f64)
            .unwrap_or_else(|| panic!("{key} missing in {entry}"))
    };
    assert!(!table.entries().is_empty());
    for entry in table.entries() {
        let text = |key: &str| entry.get(key).and_then(Json::as_str).unwrap().to_string();
        let label = format!("{}:{}", text("model"), text("estimator"));
        let cell = Cell::parse(&label).unwrap();
        assert!(Cell::all().contains(&cell), "{label} is not a cell");
        assert_eq!(number(entry, "epochs"), 30.0, "{label}");
        assert_eq!(number(entry, "eval_samples"), 1000.0, "{label}");
        assert_eq!(number(entry, "valid_samples"), 100.0, "{label}");
        assert_eq!(number(entry, "variance_warmup"), 100.0, "{label}");
        assert_eq!(number(entry, "variance_samples"), 100.0, "{label}");
        assert_eq!(number(entry, "seed"), 0.0, "{label}");
        let nats = number(entry, "nats");
        assert!(nats.is_finite() && nats > 0.0, "{label}: {nats}");
        let variance = number(entry, "grad_variance");
        assert!(
            variance.is_finite() && variance >= 0.0,
            "{label}: {variance}"
        );
        assert!(number(entry, "train_seconds") > 0.0, "{label}");
        let grid: Vec<(f64, f64)> = entry
            .get("lr_grid")
            .and_then(Json::as_array)
            .unwrap()
            .iter()
            .map(|c| (number(c, "learning_rate"), number(c, "valid_nats")))
            .collect();
        let rates: Vec<f64> = grid.iter().map(|&(rate, _)| rate).collect();
        assert_eq!(rates, [3e-4, 1e-3, 3e-3], "{label}");
        let best = grid
            .iter()
            .fold(grid[0], |best, &c| if c.1 < best.1 { c } else { best });
        assert_eq!(number(entry, "learning_rate"), best.0, "{label}");
        let command = format!(
            "cargo run --release --example leaderboard -- --cell \"{label}\" --binarized-mnist \"$GUMBELGRAD_DATA/binarized_mnist\""
        );
        assert!(
            text("command").starts_with(&command),
            "{label}: {}",
            text("command")
        );
        let row = page
            .lines()
            .find(|line| line.starts_with(&format!("| `{}` |", text("estimator"))))
            .unwrap_or_else(|| panic!("no row for {label} in docs/leaderboard.md"));
        assert!(row.contains(&format!(" {nats} |")), "{label}: {row}");
    }
}
