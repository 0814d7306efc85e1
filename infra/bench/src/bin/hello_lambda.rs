//! The reference for the Lambda size and cold-start benchmark: a minimal
//! `lambda_http` function, built with the same profile as `api` and `worker`.

use lambda_http::{run, service_fn, Body, Error, Request, Response};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|_req: Request| async {
        Ok::<_, Error>(Response::new(Body::from("hello")))
    }))
    .await
}
