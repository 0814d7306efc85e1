//! AWS mode against the emulators (LocalStack for SQS and SNS, DynamoDB
//! Local for DynamoDB): the shared conformance suites, then the Lambda
//! functions end to end, then faults, then the arm64 functions that
//! `sam build` made.

mod conformance;
mod deploy;
mod drills;
mod e2e;
mod events;
mod explore;
mod faults;
mod fleet;
mod lanes;
mod notices;
mod routes;
mod stack;
mod traces;
