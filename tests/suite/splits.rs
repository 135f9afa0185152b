//! Degenerate labelled/unlabelled splits of the semi-supervised run are typed errors,
//! not epochs of no step whose mean loss is 0 / 0 = NaN.

use gumbelgrad::Error;
use gumbelgrad::models::semi_supervised::steps_per_epoch;
use proptest::prelude::*;

#[test]
fn every_image_labelled_is_a_typed_error() {
    // 20,000 synthetic training digits with 2,000 labels per class: none unlabelled.
    let error = steps_per_epoch(20_000, 0, 100).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument { message, .. } if message.contains("0 unlabelled")),
        "{error:?}"
    );
    assert!(steps_per_epoch(19_950, 50, 100).is_err());
    assert!(steps_per_epoch(0, 20_000, 100).is_err());
    assert!(steps_per_epoch(100, 20_000, 0).is_err());
    assert_eq!(steps_per_epoch(100, 19_900, 100).unwrap(), 199);
}

proptest! {
    #![proptest_config(gumbelgrad::testing::config(256))]

    /// Ok exactly when an epoch has at least one step and some label; then the count is
    /// the number of whole batches.
    #[test]
    fn steps_per_epoch_is_positive_or_an_error(
        labelled in prop_oneof![Just(0usize), 1usize..100_000, Just(usize::MAX)],
        unlabelled in prop_oneof![Just(0usize), 1usize..100_000, Just(usize::MAX)],
        batch in prop_oneof![Just(0usize), 1usize..1000, Just(usize::MAX)],
    ) {
        match steps_per_epoch(labelled, unlabelled, batch) {
            Ok(steps) => {
                prop_assert!(labelled > 0 && batch > 0 && steps >= 1);
                prop_assert_eq!(steps, (unlabelled / batch) as u64);
            }
            Err(error) => {
                let typed = matches!(error, Error::InvalidArgument { .. });
                prop_assert!(typed);
                prop_assert!(labelled == 0 || batch == 0 || unlabelled < batch);
            }
        }
    }
}
