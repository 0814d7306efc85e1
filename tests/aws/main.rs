//! AWS mode against the emulators (LocalStack for SQS and SNS, DynamoDB
//! Local for DynamoDB): the shared conformance suites, then the Lambda
//! functions end to end, then faults.

mod conformance;
mod e2e;
mod faults;
mod fleet;
mod stack;
