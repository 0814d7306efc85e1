//! A subset of the fault exploration (`failover_tests::explore`) on
//! DynamoDB, SQS and SNS: every fault kind at every tenth operation, in the
//! Lambda functions' engine mode (a call cut at the deadline is not
//! followed), each schedule on fresh resources.

use failover_tests::aws::{fresh, AwsBackEnd};
use failover_tests::chaos::guarded;
use failover_tests::explore::{clock, explore_all, Scope};

#[test]
fn the_promise_holds_on_dynamodb_and_sqs() {
    let scope = Scope {
        every: 10,
        pairs: false,
        guard_io: true,
    };
    let explored = explore_all(&[false], scope, || async {
        let env = guarded(fresh(), true).await;
        let clock = clock();
        (AwsBackEnd::new(&env, clock.clone()), clock)
    });
    eprintln!("fault exploration, DynamoDB and SQS: {explored} schedules explored");
    assert!(explored > 20, "{explored}");
}
