//! AWS mode against the emulators (LocalStack for SQS and SNS, DynamoDB
//! Local for DynamoDB): the shared conformance suites, then end to end.

mod conformance;
