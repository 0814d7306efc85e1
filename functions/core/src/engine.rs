//! The failover engine: answer in time, or accept durably.
//!
//! For each request: decide whether to try the backend at all (client asked
//! for async, `FORCE_MODE`, load shedding, breaker), try it under a hard
//! deadline, classify the outcome (2xx/3xx/4xx answer the client; timeout,
//! 5xx, 429 and connection errors fail over), and otherwise capture the
//! request: the ticket first, then the queue message. A 202 leaves here only
//! after both writes returned; if either fails, the ticket is removed again
//! and the caller gets [`SubmitError::Unavailable`] (503), never a 202 for a
//! request that could be lost.
//!
//! The ticket id is minted before the sync attempt and sent to the backend as
//! `Idempotency-Key`, so a sync attempt that timed out after the backend
//! acted, and the background retry that follows, are one operation to it.
//!
//! Only the policy's deadline (capped by the host's remaining time) judges
//! the backend. A client's shorter `Prefer: wait` decides how long that
//! client waits, not whether the backend is healthy: such a call never takes
//! the half-open probe slot, and the breaker hears of it only by how it
//! really ends (in local mode, which keeps following it; on Lambda, which
//! freezes after the response, not at all). `wait=0` calls nothing.
//!
//! Local mode ([`Engine::following`]) does not waste a slow call: when the
//! client stops waiting, the call keeps running (up to `WORKER_DEADLINE_MS`)
//! and its ticket is captured as already in flight, so the worker waits for
//! it instead of calling the backend a second time (see `follow.rs`).
//!
//! A submission runs as its own task: a client that hangs up cannot cut a
//! capture half way or leave its `Idempotency-Key` in flight.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{timeout, Instant};
use tokio_util::task::TaskTracker;

use crate::attempt::judge;
use crate::breaker::{Admission, CallOutcome, HealthGates};
use crate::config::{ForceMode, Policy};
use crate::drill::{applying, Drill, DrillCache, DrillStore};
use crate::follow::{Call, Followed};
use crate::idempotency::{self, Begin};
use crate::message::QueueMessage;
use crate::metrics::{Metric, Metrics};
use crate::ports::{
    Backend, Clock, IdemOutcome, IdempotencyStore, Priority, Queue, StoreError, TicketStore,
};
use crate::route::{Lookup, Route, RouteTable, DEFAULT_ROUTE};
use crate::ticket::{CapturedRequest, Reason, Ticket, TicketId};
use crate::trace::{Open, SpanKind, TraceContext};

/// The ports the engine and the worker use.
#[derive(Clone)]
pub struct Deps {
    pub backend: Arc<dyn Backend>,
    pub tickets: Arc<dyn TicketStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub queue: Arc<dyn Queue>,
    /// A breaker per group of routes.
    pub health: Arc<HealthGates>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
    /// Where requests go (the engine looks them up; the worker replays
    /// each ticket to its route's backend).
    pub routes: Arc<RouteTable>,
    /// Where spans go ([`crate::trace`]; `NoTracer` records none).
    pub tracer: Arc<dyn crate::trace::Tracer>,
}

/// A request as the edge received it: method, path, query, headers and
/// the body's bytes, with what the client asked for (`Prefer`).
#[derive(Debug, Clone)]
pub struct Submission {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Request headers, names in lower case (the route picks what goes on;
    /// a host may leave out those the engine never reads:
    /// [`Engine::reads_header`]).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub content_type: String,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    pub callback_url: Option<String>,
    /// `Prefer: respond-async`.
    pub respond_async: bool,
    /// `Prefer: wait=N`.
    pub wait: Option<Duration>,
    /// A further cap from the host (Lambda's remaining time minus a reserve).
    pub deadline_cap: Option<Duration>,
    /// Who sent it, as the host authenticated them (see
    /// [`CapturedRequest::owner`]).
    pub owner: Option<String>,
}

impl Default for Submission {
    /// `POST /requests`, the gateway's door without a routes file.
    fn default() -> Self {
        Self {
            method: "POST".into(),
            path: "/requests".into(),
            query: None,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: String::new(),
            request_id: String::new(),
            idempotency_key: None,
            callback_url: None,
            respond_async: false,
            wait: None,
            deadline_cap: None,
            owner: None,
        }
    }
}

/// Where a submission goes: its route, and the request as it is kept and
/// replayed.
struct Target {
    route: Arc<Route>,
    request: CapturedRequest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The backend's own answer.
    Sync {
        ticket_id: TicketId,
        status: u16,
        body: Vec<u8>,
        content_type: Option<String>,
        /// The response headers the route passes on.
        headers: Vec<(String, String)>,
    },
    /// 202: captured durably.
    Accepted {
        ticket_id: TicketId,
        reason: Reason,
        retry_after_s: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub answer: Answer,
    /// `Preference-Applied` values.
    pub applied: Vec<String>,
    /// True when this is a stored outcome replayed for an `Idempotency-Key`.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SubmitError {
    #[error("a request with this Idempotency-Key is still in progress")]
    InFlight { retry_after_s: u64 },
    #[error("this Idempotency-Key was used with a different body")]
    KeyReused,
    #[error("the request could not be stored durably: {detail}")]
    Unavailable { retry_after_s: u64, detail: String },
    #[error("no route for this path")]
    NotFound,
    #[error("this path takes {}", allow.join(", "))]
    MethodNotAllowed { allow: Vec<String> },
    #[error("this route takes {}", accepted.join(", "))]
    UnsupportedMediaType { accepted: Vec<String> },
    /// A `sync_only` route whose backend could not answer now: nothing was
    /// queued (it would have failed over for `reason`).
    #[error("the backend could not answer ({}) and this route does not queue requests", reason.as_str())]
    SyncOnly { retry_after_s: u64, reason: Reason },
    /// A `Failover-Lane` header naming no lane, where clients may choose.
    #[error("{0}")]
    BadLane(String),
}

pub struct Engine {
    policy: Arc<Policy>,
    deps: Deps,
    /// Each route's sync calls in flight (`sync_max_inflight` slots each).
    inflight: Vec<(String, usize, Arc<Semaphore>)>,
    /// Keep a sync call running after its client stopped waiting.
    follow: bool,
    /// Those calls, so that shutdown can wait for them ([`Engine::settle`]).
    followers: TaskTracker,
    /// The drills in force, if this deployment reads any ([`crate::drill`]).
    drills: Option<DrillCache>,
    /// Ticket writes of this process, if its store announces them
    /// ([`crate::changes`]).
    changes: Option<Arc<crate::changes::Changes>>,
    /// The request headers anything here reads (lower case): those some
    /// route forwards, the lane's and the trace context's.
    read_headers: Vec<String>,
}

fn secs_ceil(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

impl Engine {
    pub fn new(policy: Arc<Policy>, deps: Deps) -> Self {
        let inflight = deps
            .routes
            .routes()
            .iter()
            .map(|r| {
                let max = r.policy.sync_max_inflight;
                (r.name.clone(), max, Arc::new(Semaphore::new(max)))
            })
            .collect();
        let mut read_headers: Vec<String> = ["traceparent", "tracestate", crate::lane::LANE_HEADER]
            .map(String::from)
            .into_iter()
            .chain(
                deps.routes
                    .routes()
                    .iter()
                    .flat_map(|r| r.forward_headers.clone()),
            )
            .collect();
        read_headers.sort();
        read_headers.dedup();
        Self {
            policy,
            deps,
            inflight,
            follow: false,
            followers: TaskTracker::new(),
            drills: None,
            changes: None,
            read_headers,
        }
    }

    /// Whether a request header (lower case) is ever read: forwarded by a
    /// route, or the lane's or trace context's. The others need not be
    /// copied into a [`Submission`].
    pub fn reads_header(&self, name: &str) -> bool {
        self.read_headers
            .binary_search_by(|h| h.as_str().cmp(name))
            .is_ok()
    }

    /// Obeys the drills in `store`, read once per health-cache period.
    pub fn with_drills(mut self, store: Arc<dyn DrillStore>) -> Self {
        self.drills = Some(DrillCache::new(store, self.policy.health_cache));
        self
    }

    /// Wakes event streams on the writes `changes` announces (the store in
    /// `deps` must be wrapped in [`crate::changes::Watched`] over it).
    pub fn with_changes(mut self, changes: Arc<crate::changes::Changes>) -> Self {
        self.changes = Some(changes);
        self
    }

    pub fn changes(&self) -> Option<&Arc<crate::changes::Changes>> {
        self.changes.as_ref()
    }

    /// The drills in force now (for `/health`).
    pub fn drills(&self) -> Vec<Drill> {
        let now = self.deps.clock.now_ms();
        let all = self.drills.as_ref().map(DrillCache::current);
        all.unwrap_or_default()
            .into_iter()
            .filter(|d| d.active(now))
            .collect()
    }

    /// For a process that keeps running after it answers (local mode, not
    /// Lambda): a sync call the client stopped waiting for keeps running
    /// and completes its ticket, so the backend is called once per request.
    pub fn following(mut self) -> Self {
        self.follow = true;
        self
    }

    /// On shutdown: waits for the calls still followed after their 202
    /// (each ends by `WORKER_DEADLINE_MS`), so that an answer the backend
    /// gave is written to its ticket rather than dropped with the process.
    pub async fn settle(&self) {
        self.followers.close();
        self.followers.wait().await;
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn deps(&self) -> &Deps {
        &self.deps
    }

    /// Sync attempts running now.
    pub fn sync_inflight(&self) -> usize {
        self.inflight
            .iter()
            .map(|(_, max, slots)| max - slots.available_permits())
            .sum()
    }

    /// Runs `sub` to its answer, in a task of its own: dropping the returned
    /// future (the client hung up) does not cut the capture half way.
    pub async fn submit(self: &Arc<Self>, sub: Submission) -> Result<Submitted, SubmitError> {
        let engine = self.clone();
        match tokio::spawn(async move { engine.submit_whole(sub).await }).await {
            Ok(done) => done,
            Err(e) => Err(unavailable(format!("the request's task failed: {e}"))),
        }
    }

    /// The route of `sub` and the request it keeps (the body moves there).
    fn resolve(&self, sub: &mut Submission) -> Result<Target, SubmitError> {
        let (route, params) = match self.deps.routes.find(&sub.method, &sub.path) {
            Lookup::Found { route, params } => (route.clone(), params),
            Lookup::MethodNotAllowed(allow) => return Err(SubmitError::MethodNotAllowed { allow }),
            Lookup::NotFound => return Err(SubmitError::NotFound),
        };
        if crate::route::has_body(&route.method, &sub.body) && !route.accepts(&sub.content_type) {
            let accepted = route.content_types.clone();
            return Err(SubmitError::UnsupportedMediaType { accepted });
        }
        let headers = sub
            .headers
            .iter()
            .filter(|(name, _)| route.forward_headers.contains(name))
            .cloned()
            .collect();
        let header = sub
            .headers
            .iter()
            .find(|(name, _)| name == crate::lane::LANE_HEADER)
            .map(|(_, value)| value.as_str());
        let lane = (route.policy.lanes)
            .choose(&sub.body, header, route.lane)
            .map_err(SubmitError::BadLane)?;
        let request = CapturedRequest {
            lane,
            body: std::mem::take(&mut sub.body),
            content_type: sub.content_type.clone(),
            request_id: sub.request_id.clone(),
            callback_url: sub.callback_url.clone(),
            route: route.name.clone(),
            params,
            query: sub.query.clone(),
            headers,
            owner: sub.owner.clone(),
            trace: None,
        };
        Ok(Target { route, request })
    }

    /// The request's server span: under the client's trace context, if it
    /// sent a valid one, else the root of a new trace.
    fn server_span(&self, sub: &Submission, name: String) -> Open {
        let header = |name: &str| {
            let found = sub.headers.iter().find(|(n, _)| n == name);
            found.map(|(_, v)| v.as_str())
        };
        let parent = TraceContext::from_headers(header("traceparent"), header("tracestate"));
        let tracer = self.deps.tracer.as_ref();
        let mut span = Open::start(tracer, parent.as_ref(), name, SpanKind::Server);
        span.attr("http.request.method", sub.method.as_str());
        span
    }

    async fn submit_whole(self: Arc<Self>, mut sub: Submission) -> Result<Submitted, SubmitError> {
        let resolved = self.resolve(&mut sub);
        // Named only if it is recorded (an unused name is an allocation).
        let name = match (&resolved, self.deps.tracer.enabled()) {
            (_, false) => String::new(),
            (Ok(t), true) => format!("{} {}", sub.method, t.route.path),
            (Err(_), true) => sub.method.clone(),
        };
        let mut span = self.server_span(&sub, name);
        let result = match resolved {
            Ok(mut target) => {
                span.attr("http.route", target.route.path.as_str());
                // The engine's calls are made under the server span.
                target.request.trace = Some(span.context().clone());
                self.keyed(&sub, &target).await
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(done) => {
                let (ticket_id, status) = match &done.answer {
                    Answer::Sync {
                        ticket_id, status, ..
                    } => (ticket_id, *status),
                    Answer::Accepted {
                        ticket_id, reason, ..
                    } => {
                        span.attr("failover.reason", reason.as_str());
                        (ticket_id, 202)
                    }
                };
                span.attr("ticket.id", *ticket_id);
                span.attr("http.response.status_code", status);
                if done.replayed {
                    span.attr("failover.replayed", true);
                }
            }
            Err(e) => span.fail(e.to_string()),
        }
        span.end(self.deps.tracer.as_ref());
        result
    }

    /// Runs the request, once per `Idempotency-Key` if it has one.
    async fn keyed(&self, sub: &Submission, target: &Target) -> Result<Submitted, SubmitError> {
        let Some(key) = sub.idempotency_key.clone() else {
            return self.run(sub, target, TicketId::new()).await;
        };
        let now = self.deps.clock.now_ms();
        // A key names one operation: the same body on another route is
        // another request (the default route keeps its old fingerprints).
        let fp = match target.route.name == DEFAULT_ROUTE {
            true => idempotency::fingerprint(&target.request.body),
            false => {
                let r = &target.request;
                let mut what = format!(
                    "{} {}?{}\n",
                    sub.method,
                    sub.path,
                    r.query.as_deref().unwrap_or("")
                )
                .into_bytes();
                what.extend_from_slice(&r.body);
                idempotency::fingerprint(&what)
            }
        };
        let lease = (self.policy.sync_deadline + self.policy.capture_timeout * 2).as_millis();
        let ttl = self.policy.ticket_ttl.as_millis() as i64;
        let store = self.deps.idempotency.as_ref();
        let timing = idempotency::Lease {
            now,
            lease_ms: lease as i64,
            ttl_ms: ttl,
        };
        let record = match idempotency::begin(store, &key, &fp, timing, TicketId::new()).await {
            Err(e) => return Err(unavailable(e.to_string())),
            Ok(Begin::Mismatch) => return Err(SubmitError::KeyReused),
            Ok(Begin::InFlight { retry_after_ms }) => {
                return Err(SubmitError::InFlight {
                    retry_after_s: secs_ceil(retry_after_ms),
                })
            }
            Ok(Begin::Replay(outcome)) => {
                return replay(outcome).ok_or(SubmitError::InFlight { retry_after_s: 1 })
            }
            Ok(Begin::Run(record)) => record,
        };
        let ticket_id = idempotency::ticket_of(&record).unwrap_or_default();
        let result = self.run(sub, target, ticket_id).await;
        match &result {
            Ok(done) => {
                let outcome = match &done.answer {
                    Answer::Sync {
                        ticket_id,
                        status,
                        body,
                        content_type,
                        headers,
                    } => IdemOutcome::Sync {
                        status: *status,
                        body: body.clone(),
                        content_type: content_type.clone(),
                        headers: headers.clone(),
                        ticket_id: *ticket_id,
                    },
                    Answer::Accepted {
                        ticket_id, reason, ..
                    } => IdemOutcome::Accepted {
                        ticket_id: *ticket_id,
                        reason: *reason,
                    },
                };
                if let Err(e) = idempotency::finish(store, &record, outcome).await {
                    // The answer stands; a retry inside the lease gets 409,
                    // after it the request runs again under the same key.
                    tracing::error!(error = %e, key, "could not store the idempotent outcome");
                }
            }
            Err(_) => {
                if let Err(e) = idempotency::release(store, &record).await {
                    // Then it is taken over when its lease ends, still
                    // under the same ticket id.
                    tracing::warn!(error = %e, key, "could not free the idempotency key");
                }
            }
        }
        result
    }

    async fn run(
        &self,
        sub: &Submission,
        target: &Target,
        ticket_id: TicketId,
    ) -> Result<Submitted, SubmitError> {
        let req = &target.request;
        let policy = &target.route.policy;
        let mut applied = Vec::new();
        // A sync-only route has no async answer to prefer.
        if sub.respond_async && !target.route.sync_only {
            applied.push("respond-async".to_string());
            return self
                .capture(req, ticket_id, Reason::ClientRequested, None, applied)
                .await;
        }
        // A drill overrides FORCE_MODE for its scope.
        let now = self.deps.clock.now_ms();
        let drills = self.drills.as_ref().map(DrillCache::current);
        let (route, group) = (&target.route.name, &target.route.group);
        let drill = drills
            .as_deref()
            .and_then(|d| applying(d, route, group, now));
        let mode = drill.map_or(policy.force_mode, |d| d.mode);
        if mode == ForceMode::Async {
            return self
                .capture(req, ticket_id, Reason::Forced, None, applied)
                .await;
        }
        if policy.lanes.opens_at(req.lane, now).is_some() {
            // Outside its lane's window: not even a sync attempt.
            return self
                .capture(req, ticket_id, Reason::Scheduled, None, applied)
                .await;
        }
        let judge_by = match sub.deadline_cap {
            Some(cap) => policy.sync_deadline.min(cap),
            None => policy.sync_deadline,
        };
        let mut answer_by = judge_by;
        if let Some(wait) = sub.wait {
            answer_by = answer_by.min(wait);
            applied.push(format!("wait={}", wait.as_secs()));
        }
        if answer_by.is_zero() {
            // No time to try: nothing is learnt about the backend.
            return self
                .capture(req, ticket_id, Reason::Timeout, None, applied)
                .await;
        }
        let cut = answer_by < judge_by;
        // Shed before asking the breaker, so that a shed request never takes
        // the half-open probe slot.
        let slots = self
            .inflight
            .iter()
            .find(|(name, ..)| *name == target.route.name);
        let permit = slots.and_then(|(_, _, slots)| slots.clone().try_acquire_owned().ok());
        let Some(permit) = permit else {
            return self
                .capture(req, ticket_id, Reason::Overloaded, None, applied)
                .await;
        };
        let gate = self.deps.health.gate(&target.route.group).clone();
        let admission = match cut {
            true => gate.admit_without_probe().await,
            false => gate.admit().await,
        };
        let admission = match admission {
            // A sync drill tries every request, whatever the breaker says.
            Admission::Open { .. } if drill.is_some_and(|d| d.mode == ForceMode::Sync) => {
                Admission::Sync
            }
            other => other,
        };
        match admission {
            Admission::Open { retry_after } => {
                let hint = secs_ceil(retry_after.as_millis() as u64);
                return self
                    .capture(req, ticket_id, Reason::CircuitOpen, Some(hint), applied)
                    .await;
            }
            Admission::Shed => {
                return self
                    .capture(req, ticket_id, Reason::Overloaded, None, applied)
                    .await;
            }
            Admission::Sync | Admission::Probe => {}
        }
        let started = Instant::now();
        let tracer = self.deps.tracer.as_ref();
        let mut span = Open::start(tracer, req.trace.as_ref(), "sync attempt", SpanKind::Client);
        span.attr("ticket.id", ticket_id);
        let mut call = Call::start(&self.deps, req, ticket_id, span.context().clone());
        let Ok(result) = timeout(answer_by, &mut call).await else {
            if !cut {
                // Missed the policy deadline: a timeout, whatever comes later.
                gate.record(admission, CallOutcome::Timeout, judge_by).await;
            }
            let followed = Followed {
                call,
                gate,
                permit,
                admission,
                started,
                judge_by: cut.then_some(judge_by),
                span,
            };
            return self.time_out(req, ticket_id, followed, applied).await;
        };
        let latency = started.elapsed();
        drop(permit);
        let judged = judge(Some(result));
        crate::attempt::end_span(span, &judged, tracer);
        gate.record(admission, judged.health, latency).await;
        match judged.response {
            Some(r) if judged.answered() => {
                self.deps.metrics.record(Metric::SyncAnswered {
                    latency_ms: latency.as_secs_f64() * 1000.0,
                    route: self.route_label(&target.route.name),
                });
                Ok(Submitted {
                    answer: Answer::Sync {
                        ticket_id,
                        status: r.status,
                        body: r.body,
                        content_type: r.content_type,
                        headers: r.headers,
                    },
                    applied,
                    replayed: false,
                })
            }
            _ => {
                tracing::warn!(problem = %judged.problem, %ticket_id, "backend failed");
                self.capture(req, ticket_id, Reason::BackendError, None, applied)
                    .await
            }
        }
    }

    /// The client stops waiting: capture. Local mode keeps the call running
    /// and captures its ticket as in flight; elsewhere the call is dropped.
    async fn time_out(
        &self,
        req: &CapturedRequest,
        ticket_id: TicketId,
        followed: Followed,
        applied: Vec<String>,
    ) -> Result<Submitted, SubmitError> {
        if !self.follow || self.queues(req, Reason::Timeout, None).is_err() {
            followed.cancel(self.deps.tracer.as_ref());
            return self
                .capture(req, ticket_id, Reason::Timeout, None, applied)
                .await;
        }
        let lease_until = self.deps.clock.now_ms() + self.policy.worker_lease().as_millis() as i64;
        let ticket = self
            .new_ticket(req, ticket_id, Reason::Timeout)
            .in_flight(lease_until);
        let server = req.trace.as_ref();
        let captured = self.capture_ticket(&ticket, server, None, applied).await;
        match captured.is_ok() {
            true => {
                let (deps, policy) = (self.deps.clone(), self.policy.clone());
                (self.followers).spawn(crate::follow::follow(deps, policy, ticket, followed));
            }
            false => followed.cancel(self.deps.tracer.as_ref()),
        }
        captured
    }

    /// Ticket, then message; both durable before the 202.
    async fn capture(
        &self,
        req: &CapturedRequest,
        ticket_id: TicketId,
        reason: Reason,
        retry_hint_s: Option<u64>,
        applied: Vec<String>,
    ) -> Result<Submitted, SubmitError> {
        self.queues(req, reason, retry_hint_s)?;
        let ticket = self.new_ticket(req, ticket_id, reason);
        let server = req.trace.as_ref();
        self.capture_ticket(&ticket, server, retry_hint_s, applied)
            .await
    }

    /// A route as a metric dimension: none without a routes file.
    fn route_label(&self, route: &str) -> String {
        match route == DEFAULT_ROUTE {
            true => String::new(),
            false => route.to_string(),
        }
    }

    /// Whether this request's route fails over (`sync_only` ones answer
    /// 503 with `Retry-After` instead).
    fn queues(
        &self,
        req: &CapturedRequest,
        reason: Reason,
        retry_hint_s: Option<u64>,
    ) -> Result<(), SubmitError> {
        match self.deps.routes.by_name(&req.route) {
            Some(route) if route.sync_only => Err(SubmitError::SyncOnly {
                retry_after_s: retry_hint_s.unwrap_or(1).clamp(1, 60),
                reason,
            }),
            _ => Ok(()),
        }
    }

    /// A queued ticket; one whose lane is outside its window is due when
    /// the window opens (so that the sweeper does not take it for lost).
    /// It keeps its capture span's context, under the request's span.
    fn new_ticket(&self, req: &CapturedRequest, ticket_id: TicketId, reason: Reason) -> Ticket {
        let mut request = req.clone();
        request.trace = Some(
            req.trace
                .as_ref()
                .map_or_else(TraceContext::root, TraceContext::child),
        );
        let now = self.deps.clock.now_ms();
        let ttl = self.policy.ticket_ttl.as_millis() as i64;
        let mut ticket = Ticket::new(ticket_id, reason, request, now, ttl);
        ticket.next_attempt_at = self.policy.lanes.opens_at(req.lane, now);
        ticket
    }

    /// Writes `ticket` and its message, in the capture span (under
    /// `server`, the request's span).
    async fn capture_ticket(
        &self,
        ticket: &Ticket,
        server: Option<&TraceContext>,
        retry_hint_s: Option<u64>,
        applied: Vec<String>,
    ) -> Result<Submitted, SubmitError> {
        let tracer = self.deps.tracer.as_ref();
        let context = (ticket.request.trace.clone()).unwrap_or_else(TraceContext::root);
        let parent = server.map(|s| s.span_id);
        let mut span = Open::resume(tracer, context, parent, "capture", SpanKind::Producer);
        span.attr("ticket.id", ticket.id);
        span.attr("failover.reason", ticket.reason.as_str());
        span.attr("failover.lane", ticket.request.lane.as_str());
        let started = Instant::now();
        let captured = self.write_durably(ticket, retry_hint_s, applied).await;
        if let Err(e) = &captured {
            span.fail(e.to_string());
        }
        span.end(tracer);
        let metric = match &captured {
            Ok(_) => {
                self.deps.metrics.record(Metric::Failover {
                    reason: ticket.reason.as_str(),
                    route: self.route_label(&ticket.request.route),
                    lane: ticket.request.lane.as_str(),
                });
                Metric::CaptureLatency {
                    ms: started.elapsed().as_secs_f64() * 1000.0,
                }
            }
            Err(_) => Metric::CaptureFailed,
        };
        self.deps.metrics.record(metric);
        captured
    }

    async fn write_durably(
        &self,
        ticket: &Ticket,
        retry_hint_s: Option<u64>,
        applied: Vec<String>,
    ) -> Result<Submitted, SubmitError> {
        let (ticket_id, reason) = (ticket.id, ticket.reason);
        let budget = self.policy.capture_timeout;
        // Whether this call wrote the ticket (and may undo it).
        let mut ours = true;
        match timeout(budget, self.deps.tickets.create(ticket)).await {
            Ok(Ok(())) => {}
            // Only a takeover of a keyed request that died mid-capture
            // reuses a ticket id: its ticket is this request. Finish that
            // capture (a duplicate message is harmless) rather than make a
            // second ticket.
            Ok(Err(StoreError::Conflict)) => ours = false,
            Ok(Err(e)) => return Err(unavailable(format!("ticket store: {e}"))),
            Err(_) => {
                // The write may still land; undo it so that no ticket exists
                // for a request the client was told we did not accept. If
                // it lands after the undo, nothing ever acted on it, and
                // such a ticket never runs (see `Ticket::park`).
                self.undo(ticket).await;
                return Err(unavailable("ticket store: timed out".into()));
            }
        }
        let body = QueueMessage::new(ticket_id).to_body();
        // Due when its window opens, or now.
        let now = self.deps.clock.now_ms();
        let wait_ms = ticket.next_attempt_at.map_or(0, |at| (at - now).max(0));
        let delay = Duration::from_millis(wait_ms as u64);
        let priority = Priority {
            lane: ticket.request.lane,
            since_ms: now + wait_ms,
        };
        let send = self.deps.queue.send(&body, priority, delay);
        let sent = timeout(budget, send).await;
        let failure = match sent {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("queue: {e}")),
            Err(_) => Some("queue: timed out".to_string()),
        };
        if let Some(detail) = failure {
            // A message that did land after all finds no ticket and is
            // dropped by the worker.
            if ours {
                self.undo(ticket).await;
            }
            return Err(unavailable(detail));
        }
        tracing::info!(%ticket_id, reason = reason.as_str(), "request accepted for async processing");
        // Not before its window: the client need not poll until then.
        let retry_after_s = match wait_ms {
            0 => retry_hint_s.unwrap_or(1).clamp(1, 60),
            ms => secs_ceil(ms as u64),
        };
        Ok(Submitted {
            answer: Answer::Accepted {
                ticket_id,
                reason,
                retry_after_s,
            },
            applied,
            replayed: false,
        })
    }

    /// Removes the ticket of a capture that failed, trying again while the
    /// store is unavailable (within one capture budget): a queue write that
    /// timed out may still land, and its ticket must then be gone (or, if
    /// it outlives this, parked: see `Ticket::park`) before anything runs it.
    async fn undo(&self, ticket: &Ticket) {
        let attempts = async {
            let mut pause = Duration::from_millis(20);
            loop {
                match self.deps.tickets.delete(&ticket.id, ticket.version).await {
                    // Gone, or never written (a create that did not land).
                    Ok(()) | Err(StoreError::Conflict) => return,
                    Err(StoreError::Unavailable(e)) => {
                        tracing::warn!(ticket_id = %ticket.id, error = %e, "undo failed; trying again");
                    }
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        };
        if timeout(self.policy.capture_timeout, attempts)
            .await
            .is_err()
        {
            tracing::error!(ticket_id = %ticket.id, "capture failed and its ticket could not be removed");
        }
    }
}

fn unavailable(detail: String) -> SubmitError {
    tracing::error!(%detail, "capture failed: answering 503");
    SubmitError::Unavailable {
        retry_after_s: 2,
        detail,
    }
}

fn replay(outcome: IdemOutcome) -> Option<Submitted> {
    let answer = match outcome {
        IdemOutcome::Sync {
            status,
            body,
            content_type,
            headers,
            ticket_id,
        } => Answer::Sync {
            ticket_id,
            status,
            body,
            content_type,
            headers,
        },
        IdemOutcome::Accepted { ticket_id, reason } => Answer::Accepted {
            ticket_id,
            reason,
            retry_after_s: 1,
        },
        IdemOutcome::InFlight { .. } => return None,
    };
    Some(Submitted {
        answer,
        applied: Vec::new(),
        replayed: true,
    })
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
