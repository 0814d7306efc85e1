//! A Lambda Runtime API on loopback, so the real `api` and `worker`
//! binaries run as they do in Lambda: they poll `/invocation/next`, get an
//! event with a deadline, and post their answer back.
//!
//! Implements the documented protocol (2018-06-01): `next`, `response`
//! (buffered, and streamed: `Lambda-Runtime-Function-Response-Mode:
//! streaming`, each chunk handed to the test as it arrives), `error` and
//! `init/error`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, Mutex};

struct Invocation {
    id: String,
    event: Value,
    deadline_ms: u64,
}

/// A function's answer: one JSON document, or a stream.
enum Answer {
    Json(Value),
    Stream(Streamed),
}

/// A streamed answer as it arrives: the prelude (status and headers), then
/// the body's chunks, each with when it came.
pub struct Streamed {
    chunks: mpsc::UnboundedReceiver<(tokio::time::Instant, Bytes)>,
    pending: Vec<u8>,
    prelude: Option<Value>,
}

/// What separates the prelude from the body in a streamed HTTP answer.
const PRELUDE_END: [u8; 8] = [0; 8];

impl Streamed {
    /// The prelude: `statusCode`, `headers`, `cookies`.
    pub async fn prelude(&mut self, limit: Duration) -> Value {
        while self.prelude.is_none() {
            if let Some(at) = self
                .pending
                .windows(PRELUDE_END.len())
                .position(|w| w == PRELUDE_END)
            {
                let head: Vec<u8> = self.pending.drain(..at + PRELUDE_END.len()).collect();
                self.prelude =
                    Some(serde_json::from_slice(&head[..at]).expect("the prelude is JSON"));
                break;
            }
            match self.chunk_raw(limit).await {
                Some((_, bytes)) => self.pending.extend_from_slice(&bytes),
                None => panic!("the stream ended before its prelude"),
            }
        }
        self.prelude.clone().unwrap_or_default()
    }

    async fn chunk_raw(&mut self, limit: Duration) -> Option<(tokio::time::Instant, Bytes)> {
        tokio::time::timeout(limit, self.chunks.recv())
            .await
            .unwrap_or_else(|_| panic!("nothing streamed within {limit:?}"))
    }

    /// The next piece of the body and when it arrived; `None` at its end.
    pub async fn next(&mut self, limit: Duration) -> Option<(tokio::time::Instant, Bytes)> {
        self.prelude(limit).await;
        if !self.pending.is_empty() {
            let rest = Bytes::from(std::mem::take(&mut self.pending));
            return Some((tokio::time::Instant::now(), rest));
        }
        self.chunk_raw(limit).await
    }
}

#[derive(Default)]
struct Inner {
    waiting: HashMap<String, oneshot::Sender<Result<Answer, String>>>,
    init_error: Option<String>,
}

#[derive(Clone)]
struct RuntimeState {
    next: Arc<Mutex<mpsc::Receiver<Invocation>>>,
    inner: Arc<std::sync::Mutex<Inner>>,
}

/// The runtime API and the function process that polls it.
pub struct LambdaHarness {
    pub addr: String,
    invocations: mpsc::Sender<Invocation>,
    inner: Arc<std::sync::Mutex<Inner>>,
    pub child: Option<Child>,
    stdout: Arc<std::sync::Mutex<Vec<String>>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl LambdaHarness {
    pub async fn start() -> Self {
        let (tx, rx) = mpsc::channel(16);
        let inner = Arc::new(std::sync::Mutex::new(Inner::default()));
        let state = RuntimeState {
            next: Arc::new(Mutex::new(rx)),
            inner: inner.clone(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            invocations: tx,
            inner,
            child: None,
            stdout: Arc::default(),
        }
    }

    /// Starts `binary` as the function whose handler is `name` (Lambda's
    /// `_HANDLER`), with the Lambda environment plus `env` (the emulator
    /// endpoints are inherited from this process).
    pub fn spawn(&mut self, binary: &str, name: &str, env: &[(&str, String)]) {
        self.spawn_via(&[], binary, name, env);
    }

    /// As [`Self::spawn`], through `runner` (an emulator such as
    /// `qemu-aarch64 -L /usr/aarch64-linux-gnu` for another architecture's
    /// executable); an empty runner runs `binary` itself.
    pub fn spawn_via(
        &mut self,
        runner: &[String],
        binary: &str,
        name: &str,
        env: &[(&str, String)],
    ) {
        let mut cmd = match runner.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.env("AWS_LAMBDA_RUNTIME_API", &self.addr)
            .env("_HANDLER", name)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the function");
        if let Some(out) = child.stdout.take() {
            let lines = self.stdout.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut reader = tokio::io::BufReader::new(out).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().expect("lock").push(line);
                }
            });
        }
        self.child = Some(child);
    }

    /// What the function printed so far, parsed where it is JSON (logs and
    /// EMF metrics both are).
    pub fn output(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The output once `ready` holds of it (or after 10 s): the output is
    /// read by a background task, so a line just printed may not be here.
    pub async fn output_when(&self, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output();
            if ready(&out) || tokio::time::Instant::now() >= until {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One invocation: the function's JSON answer, or its error.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, String> {
        match self.call(event, timeout).await? {
            Answer::Json(v) => Ok(v),
            Answer::Stream(_) => Err("the function streamed its answer".into()),
        }
    }

    /// One invocation of a function that streams its answer.
    pub async fn invoke_streaming(
        &self,
        event: Value,
        timeout: Duration,
    ) -> Result<Streamed, String> {
        match self.call(event, timeout).await? {
            Answer::Stream(s) => Ok(s),
            Answer::Json(v) => Err(format!("the function buffered its answer: {v}")),
        }
    }

    async fn call(&self, event: Value, timeout: Duration) -> Result<Answer, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.inner
            .lock()
            .expect("lock")
            .waiting
            .insert(id.clone(), tx);
        self.invocations
            .send(Invocation {
                id,
                event,
                deadline_ms: now_ms() + timeout.as_millis() as u64,
            })
            .await
            .map_err(|_| "runtime closed".to_string())?;
        match tokio::time::timeout(timeout + Duration::from_secs(5), rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("invocation dropped".into()),
            Err(_) => Err(format!(
                "no answer in time (init error: {:?})",
                self.inner.lock().expect("lock").init_error
            )),
        }
    }
}

async fn next(State(s): State<RuntimeState>) -> Response {
    let Some(inv) = s.next.lock().await.recv().await else {
        // The test is over: leave the function waiting until it is killed,
        // as Lambda does with an idle instance.
        return std::future::pending().await;
    };
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(&mut headers, "lambda-runtime-aws-request-id", inv.id);
    put(
        &mut headers,
        "lambda-runtime-deadline-ms",
        inv.deadline_ms.to_string(),
    );
    put(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:test".into(),
    );
    put(
        &mut headers,
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".into(),
    );
    (StatusCode::OK, headers, inv.event.to_string()).into_response()
}

fn answer(s: &RuntimeState, id: &str, result: Result<Answer, String>) -> StatusCode {
    match s.inner.lock().expect("lock").waiting.remove(id) {
        Some(tx) => {
            let _ = tx.send(result);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn response(
    State(s): State<RuntimeState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> StatusCode {
    use futures_util::StreamExt;
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|m| m == "streaming");
    if !streaming {
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::BAD_REQUEST;
        };
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        return answer(&s, &id, Ok(Answer::Json(value)));
    }
    let (tx, chunks) = mpsc::unbounded_channel();
    let streamed = Streamed {
        chunks,
        pending: Vec::new(),
        prelude: None,
    };
    let status = answer(&s, &id, Ok(Answer::Stream(streamed)));
    let mut data = body.into_data_stream();
    while let Some(Ok(chunk)) = data.next().await {
        let _ = tx.send((tokio::time::Instant::now(), chunk));
    }
    status
}

async fn error(State(s): State<RuntimeState>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, Err(String::from_utf8_lossy(&body).into_owned()))
}

async fn init_error(State(s): State<RuntimeState>, body: Bytes) -> StatusCode {
    s.inner.lock().expect("lock").init_error = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}
