//! The Table 1 runner: every cell maps to an estimator that fits its model, one short
//! cell of each kind runs end to end, and the results file merges and writes atomically.

use gumbelgrad::data::SyntheticDigits;
use gumbelgrad::estimators::Estimator;
use gumbelgrad::io::json::Json;

// The harness is a program (examples/table1), not library API: its cells module is
// compiled into the suite (`main.rs`) as `table1_cells`.
use crate::table1_cells as cells;

use cells::{
    Budget, COLUMNS, Cell, ROWS, ResultsFile, TrainedCell, checkpoint_path, evaluate_cell,
    paper_value, run_cell, run_cell_with_selection, train_cell, train_cell_resumable,
};
use gumbelgrad::models::{DiscreteVae, Sbn, SbnConfig, VaeConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn every_cell_parses_and_runs_an_estimator_that_fits_its_model() {
    let cells = Cell::all();
    assert_eq!(cells.len(), ROWS.len() * COLUMNS.len());
    let mut rng = StdRng::seed_from_u64(0);
    for cell in &cells {
        assert_eq!(Cell::parse(&cell.label()).unwrap(), *cell);
        let estimator = Estimator::<f32>::from_name(
            cell.estimator_name(),
            cell.temperature().unwrap().at(0).unwrap(),
        )
        .unwrap();
        // small models with the cell's latent kind check the estimator fits
        let latent = match cell.latent() {
            gumbelgrad::models::Latent::Bernoulli { .. } => {
                gumbelgrad::models::Latent::Bernoulli { units: 2 }
            }
            _ => gumbelgrad::models::Latent::Categorical {
                variables: 1,
                classes: 3,
            },
        };
        if cell.is_sbn() {
            let config = SbnConfig {
                input_dim: 2,
                output_dim: 2,
                latent,
            };
            let model = Sbn::<f32>::new(config, &mut rng).unwrap();
            model.check_estimator(&estimator).unwrap();
        } else {
            let config = VaeConfig {
                input_dim: 4,
                latent,
                encoder_hidden: vec![3],
                decoder_hidden: vec![3],
            };
            let model = DiscreteVae::<f32>::new(config, &mut rng).unwrap();
            model.check_estimator(&estimator).unwrap();
        }
        // the paper has the first seven columns of every row
        assert_eq!(
            paper_value(cell.model, cell.estimator).is_some(),
            !matches!(cell.estimator, "REBAR" | "RELAX")
        );
    }
    assert_eq!(paper_value("VAE Cat.", "GS"), Some(101.5));
    assert!(Cell::parse("VAE Cat.:Nope").is_err());
    assert!(Cell::parse("VAE Cat. GS").is_err());
    assert_eq!(
        Cell::parse(" vae cat. : st-gs ").unwrap().estimator,
        "ST-GS"
    );
}

/// One epoch of batch 10 on synthetic digits, m = 3: enough to run a cell's whole path.
fn tiny_budget() -> Budget {
    Budget {
        epochs: 1,
        batch_size: 10,
        learning_rate: 1e-3,
        eval_samples: 3,
        seed: 0,
    }
}

#[test]
fn the_anneal_rate_changes_only_annealed_cells_and_is_recorded() {
    use cells::ANNEAL_RATE;
    let annealed = Cell::parse("VAE Cat.:Annealed ST").unwrap();
    let default_schedule = annealed.temperature().unwrap();
    let slower = annealed.clone().with_anneal_rate(1e-5).unwrap();
    let slow_schedule = slower.temperature().unwrap();
    // after 5000 steps: max(0.5, exp(-r t)) at the last update (t = 5000)
    assert!((default_schedule.at(5000).unwrap() - (-ANNEAL_RATE * 5000.0).exp()).abs() < 1e-12);
    assert!((slow_schedule.at(5000).unwrap() - (-1e-5f64 * 5000.0).exp()).abs() < 1e-12);
    // a cell that does not anneal keeps tau = 1
    let fixed = Cell::parse("SBN Cat.:GS")
        .unwrap()
        .with_anneal_rate(1e-5)
        .unwrap();
    assert_eq!(fixed.temperature().unwrap().at(5000).unwrap(), 1.0);
    assert!(annealed.clone().with_anneal_rate(0.0).is_err());
    assert!(annealed.with_anneal_rate(f64::NAN).is_err());

    let (train, test) = SyntheticDigits::new(4).with_sizes(20, 10).generate();
    let budget = tiny_budget();
    let run = |cell: &Cell| {
        run_cell(
            cell,
            &budget,
            &train.images,
            &test.images,
            "test",
            &mut |_, _| {},
        )
        .unwrap()
    };
    let slow_result = run(&slower);
    assert_eq!(slow_result.anneal_rate, Some(1e-5));
    let json = Json::parse(&slow_result.to_json().to_string()).unwrap();
    assert_eq!(
        json.get("anneal_rate").and_then(Json::as_f64),
        Some(1e-5),
        "{json}"
    );
    assert_eq!(
        run(&Cell::parse("VAE Cat.:GS").unwrap()).anneal_rate,
        Some(ANNEAL_RATE)
    );
    assert_eq!(run(&Cell::parse("VAE Cat.:ST").unwrap()).anneal_rate, None);
}

#[test]
fn a_cell_can_run_another_estimator_and_files_it_under_the_same_cell() {
    let cell = Cell::parse("SBN Bern.:MuProp").unwrap();
    assert_eq!(cell.estimator_name(), "muprop");
    // chosen on the validation set per model: normalised in the VAE rows
    let vae_cell = Cell::parse("VAE Cat.:MuProp").unwrap();
    assert_eq!(vae_cell.estimator_name(), "muprop-normalised");
    let variant = cell.clone().with_estimator("muprop-normalised").unwrap();
    assert_eq!(variant.estimator_name(), "muprop-normalised");
    assert_eq!(
        (variant.model, variant.estimator),
        (cell.model, cell.estimator)
    );
    assert!(matches!(
        cell.with_estimator("muprop-typo"),
        Err(gumbelgrad::Error::InvalidArgument { .. })
    ));

    let (train, test) = SyntheticDigits::new(3).with_sizes(20, 10).generate();
    let budget = tiny_budget();
    let result = run_cell(
        &variant,
        &budget,
        &train.images,
        &test.images,
        "test",
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(result.estimator, "MuProp");
    assert_eq!(result.estimator_name, "muprop-normalised");
    let mut table = ResultsFile::default();
    table.insert_entry(result.to_json(), ROWS, COLUMNS);
    assert!(
        table
            .get(&Cell::parse("SBN Bern.:MuProp").unwrap())
            .is_some()
    );
}

#[test]
fn short_cells_run_end_to_end_and_merge_into_the_results_file() {
    let (train, test) = SyntheticDigits::new(2).with_sizes(100, 10).generate();
    let budget = Budget {
        epochs: 1,
        batch_size: 20,
        learning_rate: 1e-3,
        eval_samples: 3,
        seed: 4,
    };
    let dir = std::env::temp_dir().join(format!("gumbelgrad-table1-test-{}", std::process::id()));
    let path = dir.join("results").join("table1.json");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ResultsFile::load(&path).unwrap().entries().is_empty());

    let cells = [
        Cell::parse("VAE Bern.:GS").unwrap(),
        Cell::parse("SBN Cat.:MuProp").unwrap(),
    ];
    for cell in &cells {
        let mut epochs = 0;
        let result = run_cell(
            cell,
            &budget,
            &train.images,
            &test.images,
            "test",
            &mut |_, cost| {
                assert!(cost.is_finite());
                epochs += 1;
            },
        )
        .unwrap();
        assert_eq!(epochs, 1);
        // a 784- or 392-pixel prediction is worth between 0 and ~784 ln 2 nats
        assert!(result.nats > 0.0 && result.nats < 800.0, "{result:?}");
        let mut table = ResultsFile::load(&path).unwrap();
        table.insert_entry(result.to_json(), ROWS, COLUMNS);
        table.save(&path).unwrap();
    }
    let table = ResultsFile::load(&path).unwrap();
    // sorted in table order: SBN rows before VAE rows
    let models: Vec<&str> = table
        .entries()
        .iter()
        .map(|e| e.get("model").unwrap().as_str().unwrap())
        .collect();
    assert_eq!(models, ["SBN Cat.", "VAE Bern."]);
    for entry in table.entries() {
        for key in [
            "model",
            "estimator",
            "nats",
            "eval_samples",
            "epochs",
            "wall_seconds",
            "command",
        ] {
            assert!(entry.get(key).is_some(), "{key} missing in {entry}");
        }
        assert_eq!(entry.get("eval_samples").unwrap().as_u64(), Some(3));
    }
    assert!(table.get(&cells[0]).is_some());
    assert!(table.get(&Cell::parse("VAE Cat.:GS").unwrap()).is_none());
    // the file is valid JSON, and no temporary file is left behind
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(Json::parse(&text).unwrap().as_array().is_some());
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );

    // a malformed file is an error naming it, not an empty table
    std::fs::write(&path, "{not json").unwrap();
    let error = ResultsFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("table1.json"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The paper's protocol: one training per learning rate, the best validation score
/// wins, and its model's test score is reported. The selected cell equals a plain run
/// at the chosen rate, and the JSON records every candidate.
#[test]
fn learning_rate_selection_keeps_the_best_validation_score() {
    let (train, test) = SyntheticDigits::new(6).with_sizes(140, 20).generate();
    let (train, valid) = train.split_validation(20, 6).unwrap();
    let budget = Budget {
        epochs: 1,
        batch_size: 20,
        learning_rate: 1e-3,
        eval_samples: 4,
        seed: 6,
    };
    let cell = Cell::parse("SBN Bern.:GS").unwrap();
    let grid = [1e-4, 3e-3, 1e-3];
    let mut seen = Vec::new();
    let selected = run_cell_with_selection(
        &cell,
        &budget,
        &grid,
        &train.images,
        &valid.images,
        8,
        &test.images,
        "test",
        &mut |rate, nats| seen.push((rate, nats)),
        &mut |_, _| {},
    )
    .unwrap();
    let selection = selected.selection.clone().unwrap();
    assert_eq!(selection.candidates, seen);
    assert_eq!(seen.iter().map(|&(rate, _)| rate).collect::<Vec<_>>(), grid);
    let best = seen.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
    assert_eq!(selected.learning_rate, best);
    // a plain run at the chosen rate gives the same test score, bit for bit
    let plain = run_cell(
        &cell,
        &Budget {
            learning_rate: best,
            ..budget.clone()
        },
        &train.images,
        &test.images,
        "test",
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(plain.nats, selected.nats);
    // and the same as training and evaluating by hand
    let trained = train_cell(
        &cell,
        &Budget {
            learning_rate: best,
            ..budget.clone()
        },
        &train.images,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        evaluate_cell(&trained, &test.images, 4, 6, 0).unwrap(),
        plain.nats
    );
    let json = selected.to_json();
    let grid_json = json.get("lr_grid").unwrap().as_array().unwrap();
    assert_eq!(grid_json.len(), 3);
    assert_eq!(json.get("valid_samples").unwrap().to_string(), "8");
    assert!(plain.to_json().get("lr_grid").is_none());
    assert!(
        run_cell_with_selection(
            &cell,
            &budget,
            &[],
            &train.images,
            &valid.images,
            8,
            &test.images,
            "test",
            &mut |_, _| {},
            &mut |_, _| {},
        )
        .is_err()
    );
}

#[test]
fn a_non_finite_result_is_written_as_null_and_the_file_stays_valid_json() {
    let result = cells::CellResult {
        model: "VAE Cat.".into(),
        estimator: "GS".into(),
        nats: f64::NAN,
        eval_samples: 3,
        epochs: 1,
        wall_seconds: f64::INFINITY,
        command: "test".into(),
        learning_rate: 1e-3,
        seed: 0,
        estimator_name: "gumbel-softmax".into(),
        anneal_rate: Some(1e-4),
        selection: Some(cells::Selection {
            candidates: vec![(1e-3, f64::NEG_INFINITY)],
            valid_samples: 2,
        }),
    };
    let text = result.to_json().to_string();
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(json.get("nats"), Some(&Json::Null));
    assert_eq!(json.get("wall_seconds"), Some(&Json::Null));
    let grid = json.get("lr_grid").and_then(Json::as_array).unwrap();
    assert_eq!(grid[0].get("valid_nats"), Some(&Json::Null));
    assert_eq!(json.get("learning_rate").and_then(Json::as_f64), Some(1e-3));
}

/// An SBN cell killed after an epoch and rerun with the same arguments resumes from its
/// checkpoint (what a kill leaves on disk: the last finished epoch's, written
/// atomically) and ends with the same bits as the uninterrupted run; a checkpoint
/// further than the epochs asked for is an error.
#[test]
fn an_interrupted_sbn_cell_resumes_to_the_same_bits() {
    let (train, _) = SyntheticDigits::new(9).with_sizes(20, 1).generate();
    let dir = |tag: &str| {
        std::env::temp_dir().join(format!(
            "gumbelgrad-table1-resume-{}-{tag}",
            std::process::id()
        ))
    };
    let weights = |trained: &TrainedCell| match trained {
        TrainedCell::Sbn(model) => model
            .parameters()
            .iter()
            .flat_map(|(_, t)| t.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<u32>>(),
        TrainedCell::Vae(_) => panic!("an SBN cell"),
    };
    for label in ["SBN Bern.:REBAR", "SBN Cat.:RELAX", "SBN Cat.:MuProp"] {
        let cell = Cell::parse(label).unwrap();
        let two = Budget {
            epochs: 2,
            ..tiny_budget()
        };
        let (straight, split) = (dir("straight"), dir("split"));
        let mut epochs = Vec::new();
        let whole =
            train_cell_resumable(&cell, &two, &train.images, Some(&straight), &mut |e, _| {
                epochs.push(e)
            })
            .unwrap();
        assert_eq!(epochs, vec![1, 2]);
        // killed after epoch 1 ...
        train_cell_resumable(
            &cell,
            &tiny_budget(),
            &train.images,
            Some(&split),
            &mut |_, _| {},
        )
        .unwrap();
        // ... and rerun: only epoch 2 is trained
        let mut epochs = Vec::new();
        let resumed =
            train_cell_resumable(&cell, &two, &train.images, Some(&split), &mut |e, _| {
                epochs.push(e)
            })
            .unwrap();
        assert_eq!(epochs, vec![2], "{label}");
        assert_eq!(weights(&whole), weights(&resumed), "{label}");
        let file = |d: &std::path::Path| {
            std::fs::read(checkpoint_path(&cell, &two, train.images.rows(), d)).unwrap()
        };
        assert!(
            file(&straight) == file(&split),
            "{label}: checkpoints differ"
        );
        // a checkpoint of 2 epochs does not serve a run of 1
        assert!(
            train_cell_resumable(
                &cell,
                &tiny_budget(),
                &train.images,
                Some(&split),
                &mut |_, _| {}
            )
            .is_err()
        );
        std::fs::remove_dir_all(&straight).unwrap();
        std::fs::remove_dir_all(&split).unwrap();
    }
}

#[test]
fn processes_merging_into_one_results_file_at_once_keep_every_entry() {
    // Each merge opens the lock file anew, as separate processes would; the threads
    // start together so that, without the lock, reads and writes interleave.
    let dir = std::env::temp_dir().join(format!("gumbelgrad-table1-merge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("table1.json");
    let cells = Cell::all();
    let start = std::sync::Barrier::new(cells.len());
    std::thread::scope(|scope| {
        for cell in &cells {
            let (path, start) = (&path, &start);
            scope.spawn(move || {
                let entry = Json::parse(&format!(
                    r#"{{"model":"{}","estimator":"{}","nats":1.0}}"#,
                    cell.model, cell.estimator
                ))
                .unwrap();
                start.wait();
                ResultsFile::merge_into(path, entry, ROWS, COLUMNS).unwrap();
            });
        }
    });
    let table = ResultsFile::load(&path).unwrap();
    assert_eq!(table.entries().len(), cells.len());
    for cell in &cells {
        assert!(table.get(cell).is_some(), "{} was lost", cell.label());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
