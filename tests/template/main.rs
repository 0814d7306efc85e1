//! `template.yaml` checked against the code and the invariants that keep
//! requests from being lost in production (cfn-lint misses most of these).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use failover_adapters::aws::env::{
    AwsSettings, OVERDUE_DUE, OVERDUE_INDEX, OVERDUE_SHARD, TABLE_KEY, TABLE_TTL_ATTRIBUTE,
};
use failover_core::Policy;
use failover_lambda::Handler;
use serde_yaml::Value;

mod alarms;

const TEMPLATE: &str = include_str!("../../template.yaml");

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("template.yaml is YAML")
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) => s.parse().expect("numeric string"),
        other => panic!("not a number: {other:?}"),
    }
}

fn tag<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == name => Some(&t.value),
        _ => None,
    }
}

fn param(t: &Value, name: &str, key: &str) -> f64 {
    num(at(t, &["Parameters", name, key]))
}

fn function(t: &Value, name: &str) -> Value {
    at(t, &["Resources", name]).clone()
}

/// The Lambda functions, by logical id.
const FUNCTIONS: [&str; 4] = [
    "ApiFunction",
    "WorkerFunction",
    "SweeperFunction",
    "EventsFunction",
];

#[test]
fn functions_are_rust_on_arm64_built_by_cargo_lambda() {
    let t = template();
    assert_eq!(t["Transform"], "AWS::Serverless-2016-10-31");
    let g = at(&t, &["Globals", "Function"]);
    assert_eq!(g["Runtime"], "provided.al2023");
    assert_eq!(g["Architectures"][0], "arm64");
    let mut handlers = Vec::new();
    for name in FUNCTIONS {
        let f = function(&t, name);
        assert_eq!(f["Type"], "AWS::Serverless::Function");
        assert_eq!(at(&f, &["Metadata", "BuildMethod"]), "rust-cargolambda");
        assert_eq!(
            at(&f, &["Metadata", "BuildProperties", "Binary"]),
            LAMBDA_BINARY
        );
        assert_eq!(at(&f, &["Properties", "CodeUri"]), LAMBDA_PACKAGE_DIR);
        let handler = at(&f, &["Properties", "Handler"])
            .as_str()
            .expect("a Handler per function");
        handlers.push(
            handler
                .parse::<Handler>()
                .expect("a handler the binary knows"),
        );
    }
    assert_eq!(handlers, Handler::ALL, "one function per handler");
}

const LAMBDA_BINARY: &str = "failover-lambda";
const LAMBDA_PACKAGE_DIR: &str = "functions/lambda";

fn cargo(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// What `sam build` runs (`cargo lambda build --release --arm64 --bin
/// failover-lambda` in the CodeUri) must find the binary with no feature,
/// since SAM can pass none; and `cargo run --release` from the root must
/// build local mode alone, without the AWS SDK. The CI's real `sam build`
/// (infra/sam-build.sh) proves the first; this says which part broke.
#[test]
fn sam_finds_the_binary_and_cargo_run_stays_local() {
    let meta: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
        "--offline",
    ]))
    .expect("metadata");
    let root = meta["workspace_root"].as_str().expect("root");
    let packages = meta["packages"].as_array().expect("packages");
    let manifest = format!("{root}/{LAMBDA_PACKAGE_DIR}/Cargo.toml");
    let lambda = packages
        .iter()
        .find(|p| p["manifest_path"] == manifest.as_str())
        .expect("the CodeUri is a workspace member");
    let bin = lambda["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .find(|t| t["name"] == LAMBDA_BINARY && t["kind"][0] == "bin")
        .expect("the CodeUri's package defines the Binary");
    assert_eq!(
        bin["required-features"].as_array().map_or(0, Vec::len),
        0,
        "SAM cannot enable features"
    );

    let local = packages
        .iter()
        .find(|p| p["name"] == "failover-local")
        .expect("local package");
    let defaults: Vec<&str> = meta["workspace_default_members"]
        .as_array()
        .expect("default members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert_eq!(
        defaults,
        [local["id"].as_str().expect("id")],
        "cargo run starts local mode"
    );
    let tree = cargo(&[
        "tree",
        "-p",
        "failover-local",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--offline",
    ]);
    let aws: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("aws-") || l.starts_with("lambda_"))
        .collect();
    assert!(aws.is_empty(), "local mode compiles {aws:?}");
    assert!(
        tree.lines().any(|l| l.starts_with("rusqlite")),
        "the tree was read"
    );
}

#[test]
fn timeouts_leave_room_for_the_deadlines() {
    let t = template();
    let api = num(at(
        &t,
        &["Resources", "ApiFunction", "Properties", "Timeout"],
    )) * 1000.0;
    let worker = num(at(
        &t,
        &["Resources", "WorkerFunction", "Properties", "Timeout"],
    )) * 1000.0;
    let capture = param(&t, "CaptureTimeoutMs", "MaxValue");
    // The API function: the longest sync attempt plus both capture writes.
    assert!(api >= param(&t, "SyncDeadlineMs", "MaxValue") + 2.0 * capture + 500.0);
    // API Gateway gives up after 30 s: the function must answer before.
    assert!(api <= 29_000.0);
    let integration = num(at(
        &t,
        &[
            "Resources",
            "ApiIntegration",
            "Properties",
            "TimeoutInMillis",
        ],
    ));
    assert!(integration > api);
    // The worker: one attempt, one webhook, the writes around them.
    assert!(
        worker
            >= param(&t, "WorkerDeadlineMs", "MaxValue")
                + param(&t, "WebhookTimeoutMs", "MaxValue")
                + 4.0 * capture
                + 1000.0
    );
    // SQS must not hand a message to a second worker while the first runs.
    let visibility = num(at(
        &t,
        &[
            "Resources",
            "RequestQueue",
            "Properties",
            "VisibilityTimeout",
        ],
    ));
    assert!(
        visibility * 1000.0 >= 6.0 * worker,
        "visibility >= 6x worker timeout"
    );
}

#[test]
fn the_queue_redrives_to_a_dlq_only_after_every_attempt_had_its_chance() {
    let t = template();
    let redrive = at(
        &t,
        &["Resources", "RequestQueue", "Properties", "RedrivePolicy"],
    );
    let target = tag(&redrive["deadLetterTargetArn"], "!GetAtt").expect("GetAtt");
    assert_eq!(target, "RequestDeadLetterQueue.Arn");
    assert_eq!(
        tag(&redrive["maxReceiveCount"], "!Ref").expect("Ref"),
        "MaxReceiveCount"
    );
    // Every attempt and every notification retry is one receive.
    assert!(
        param(&t, "MaxReceiveCount", "MinValue")
            > param(&t, "MaxAttempts", "MaxValue") + param(&t, "WebhookMaxAttempts", "MaxValue")
    );
    // The emulator bootstrap of the tests uses the same limit.
    assert_eq!(
        param(&t, "MaxReceiveCount", "Default") as u32,
        failover_tests::aws::MAX_RECEIVE_COUNT
    );
    let event = at(
        &t,
        &[
            "Resources",
            "WorkerFunction",
            "Properties",
            "Events",
            "Requests",
            "Properties",
        ],
    );
    assert_eq!(event["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    assert!(!event["ScalingConfig"]["MaximumConcurrency"].is_null());
    assert_eq!(
        tag(&event["Queue"], "!GetAtt").expect("GetAtt"),
        "RequestQueue.Arn"
    );
}

#[test]
fn the_table_matches_the_adapter() {
    let t = template();
    let p = at(&t, &["Resources", "TicketTable", "Properties"]);
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(p["KeySchema"][0]["AttributeName"], TABLE_KEY);
    assert_eq!(p["KeySchema"][0]["KeyType"], "HASH");
    assert_eq!(
        p["TimeToLiveSpecification"]["AttributeName"],
        TABLE_TTL_ATTRIBUTE
    );
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
    let index = &p["GlobalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"], OVERDUE_INDEX);
    assert_eq!(index["KeySchema"][0]["AttributeName"], OVERDUE_SHARD);
    assert_eq!(index["KeySchema"][1]["AttributeName"], OVERDUE_DUE);
    assert_eq!(index["Projection"]["NonKeyAttributes"][0], "purge_ms");
}

/// Every variable the functions' configuration reads, found by running the
/// readers themselves on a lookup that records what they ask for (a
/// variable they require is given a value, and they run again).
fn variables_read() -> BTreeSet<String> {
    let mut given: BTreeMap<&'static str, String> = BTreeMap::new();
    loop {
        let asked = RefCell::new(BTreeSet::new());
        let get = |name: &str| {
            asked.borrow_mut().insert(name.to_string());
            given.get(name).cloned()
        };
        let read = Policy::from_lookup(Policy::default(), &get)
            .and_then(|_| AwsSettings::from_lookup(&get).map(drop));
        // The exporter's variables (it reads none it requires).
        let _ = failover_adapters::otlp::Settings::from_env(&get);
        match read {
            Ok(()) => return asked.into_inner(),
            Err(e) => assert!(given.insert(e.name, "set".into()).is_none(), "{e}"),
        }
    }
}

/// The worker function's own variables.
fn worker_variables(t: &Value) -> &Value {
    let path = ["Resources", "WorkerFunction", "Properties", "Environment"];
    at(t, &[&path[..], &["Variables"]].concat())
}

#[test]
fn environment_variables_are_exactly_what_the_code_reads() {
    let t = template();
    let mut set: BTreeSet<String> = BTreeSet::new();
    let globals = at(&t, &["Globals", "Function", "Environment", "Variables"]);
    let worker = worker_variables(&t);
    for vars in [globals, worker] {
        for k in vars.as_mapping().expect("variables").keys() {
            set.insert(k.as_str().expect("name").to_string());
        }
    }
    let read = variables_read();
    assert!(read.contains("SYNC_DEADLINE_MS") && read.contains("WORKER_CONCURRENCY"));
    // The collector layer's own variable.
    let unknown: Vec<_> = set
        .difference(&read)
        .filter(|v| *v != "OPENTELEMETRY_COLLECTOR_CONFIG_URI")
        .collect();
    assert!(unknown.is_empty(), "set but never read: {unknown:?}");
    // Everything the code reads is set, except local development's
    // switches (on AWS the secret's value is never a variable) and the
    // OpenTelemetry variables besides the endpoint (the standard ones, for
    // whoever sets them on a function).
    let missing: Vec<_> = read
        .difference(&set)
        .filter(|v| !["CALLBACK_ALLOW_LOOPBACK", "WEBHOOK_SECRET"].contains(&v.as_str()))
        .filter(|v| !v.starts_with("OTEL_") && v.as_str() != "AWS_LAMBDA_FUNCTION_NAME")
        .collect();
    assert!(missing.is_empty(), "read but not set: {missing:?}");
    // The functions get the secret's name; its value stays in Secrets
    // Manager, and only the worker (which signs) may read it.
    assert!(!set.contains("WEBHOOK_SECRET"));
    let id = tag(&globals["WEBHOOK_SECRET_ID"], "!Ref").expect("Ref");
    assert_eq!(id.as_str(), Some("WebhookSecretName"));
    assert!(at(&t, &["Parameters", "WebhookSecretName", "Default"]).is_null());
    for (function, reads) in [
        ("ApiFunction", false),
        ("WorkerFunction", true),
        ("SweeperFunction", false),
        ("EventsFunction", false),
    ] {
        let policies = at(&t, &["Resources", function, "Properties", "Policies"]);
        let text = serde_yaml::to_string(policies).expect("policies");
        assert_eq!(text.contains("SecretsManager"), reads, "{function}: {text}");
    }
}

#[test]
fn parameter_defaults_are_the_contracts() {
    let t = template();
    let p = Policy::default();
    let ms = |d: std::time::Duration| d.as_millis() as f64;
    for (name, expected) in [
        ("SyncDeadlineMs", ms(p.sync_deadline)),
        ("ErrorRateThreshold", p.error_rate_threshold),
        ("SlowCallMs", ms(p.slow_call)),
        ("SlowRateThreshold", p.slow_rate_threshold),
        ("BreakerWindowS", p.breaker_window.as_secs() as f64),
        ("BreakerMinCalls", p.breaker_min_calls as f64),
        ("BreakerOpenMs", ms(p.breaker_open)),
        ("BreakerOpenMaxMs", ms(p.breaker_open_max)),
        ("BreakerCloseAfter", p.breaker_close_after as f64),
        ("SyncMaxInflight", p.sync_max_inflight as f64),
        ("WorkerDeadlineMs", ms(p.worker_deadline)),
        ("MaxAttempts", p.max_attempts as f64),
        ("MaxBodyBytes", p.max_body_bytes as f64),
        ("MaxAnswerBytes", p.max_answer_bytes as f64),
        ("TicketTtlSeconds", p.ticket_ttl.as_secs() as f64),
        ("CaptureTimeoutMs", ms(p.capture_timeout)),
        ("RetryBaseMs", ms(p.retry_base)),
        ("RetryMaxMs", ms(p.retry_max)),
        ("WebhookMaxAttempts", p.webhook_max_attempts as f64),
        ("WebhookTimeoutMs", ms(p.webhook_timeout)),
        ("HealthCacheMs", ms(p.health_cache)),
        ("DrainMaxRps", p.drain_max_rps as f64),
        ("DrainRampS", p.drain_ramp.as_secs() as f64),
    ] {
        let default = param(&t, name, "Default");
        assert_eq!(default, expected, "{name}");
        let param_def = at(&t, &["Parameters", name]);
        if !param_def["MinValue"].is_null() {
            assert!(
                default >= num(&param_def["MinValue"]),
                "{name} below MinValue"
            );
        }
        if !param_def["MaxValue"].is_null() {
            assert!(
                default <= num(&param_def["MaxValue"]),
                "{name} above MaxValue"
            );
        }
    }
    // The bounds the code enforces are the template's (what a table item
    // with its claim check, and a Lambda payload, hold at worst).
    use failover_core::config::{BODY_LIMIT, NOTIFY_ATTEMPTS_LIMIT};
    for (name, most) in [
        ("MaxBodyBytes", BODY_LIMIT),
        ("MaxAnswerBytes", BODY_LIMIT),
        ("WebhookMaxAttempts", NOTIFY_ATTEMPTS_LIMIT),
    ] {
        assert_eq!(param(&t, name, "MaxValue"), f64::from(most), "{name}");
    }
    assert_eq!(at(&t, &["Parameters", "ForceMode", "Default"]), "auto");
    let schedule = at(&t, &["Parameters", "NotifyRetrySchedule", "Default"]);
    assert_eq!(
        schedule.as_str(),
        Some(p.notify_schedule.to_string().as_str())
    );
}

/// Every `!Ref`, `!GetAtt` and `${...}` names something that exists.
#[test]
fn every_reference_resolves() {
    let t = template();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for section in ["Parameters", "Resources"] {
        for k in t[section].as_mapping().expect("section").keys() {
            names.insert(k.as_str().expect("name").to_string());
        }
    }
    // What SAM generates: a function's URL is `<Function>Url`.
    for (k, r) in t["Resources"].as_mapping().expect("resources") {
        if !r["Properties"]["FunctionUrlConfig"].is_null() {
            names.insert(format!("{}Url", k.as_str().expect("name")));
        }
    }
    let conditions: BTreeSet<String> = t["Conditions"]
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut problems = Vec::new();
    walk(&t, &mut |v| {
        let check = |name: &str, problems: &mut Vec<String>| {
            let base = name.split('.').next().unwrap_or(name);
            if !base.starts_with("AWS::") && !names.contains(base) {
                problems.push(name.to_string());
            }
        };
        if let Some(Value::String(r)) = tag(v, "!Ref") {
            check(r, &mut problems);
        }
        if let Some(Value::String(g)) = tag(v, "!GetAtt") {
            check(g, &mut problems);
        }
        if let Some(Value::String(s)) = tag(v, "!Sub") {
            for part in s.split("${").skip(1) {
                let name = part.split('}').next().unwrap_or("");
                check(name, &mut problems);
            }
        }
        if let Some(Value::Sequence(args)) = tag(v, "!If") {
            if let Some(Value::String(c)) = args.first() {
                if !conditions.contains(c) {
                    problems.push(format!("condition {c}"));
                }
            }
        }
    });
    assert!(problems.is_empty(), "dangling references: {problems:?}");
}

fn walk(v: &Value, f: &mut dyn FnMut(&Value)) {
    f(v);
    match v {
        Value::Mapping(m) => m.values().for_each(|x| walk(x, f)),
        Value::Sequence(s) => s.iter().for_each(|x| walk(x, f)),
        Value::Tagged(t) => walk(&t.value, f),
        _ => {}
    }
}

#[test]
fn every_function_that_writes_may_write_the_table() {
    // Three write tickets (the sweeper marks what it re-enqueues), and api
    // and worker the fleet's breaker: a read-only policy would fail only
    // in AWS, where the emulators enforce no IAM. The events function only
    // reads, and may only read.
    let t = template();
    for function in FUNCTIONS {
        let policies = at(&t, &["Resources", function, "Properties", "Policies"]);
        let writes = policies.as_sequence().expect("policies").iter().any(|p| {
            ["DynamoDBCrudPolicy", "DynamoDBWritePolicy"]
                .iter()
                .any(|name| tag(&p[*name]["TableName"], "!Ref").is_some())
        });
        assert_eq!(writes, function != "EventsFunction", "{function}");
    }
    let url = at(
        &t,
        &[
            "Resources",
            "EventsFunction",
            "Properties",
            "FunctionUrlConfig",
        ],
    );
    assert_eq!(url["InvokeMode"], "RESPONSE_STREAM");
}

/// Bodies too large for a table item live in a private, encrypted bucket
/// that every function can read and write (any of them may rewrite a
/// ticket), and that keeps them at least as long as any ticket is kept.
#[test]
fn the_body_bucket_is_private_and_outlives_every_ticket() {
    let t = template();
    let bucket = at(&t, &["Resources", "BodyBucket", "Properties"]);
    let block = &bucket["PublicAccessBlockConfiguration"];
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[flag], Value::Bool(true), "{flag}");
    }
    assert!(!bucket["BucketEncryption"].is_null());
    let rules = bucket["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .expect("lifecycle rules");
    let expiry = rules
        .iter()
        .find(|r| r["Prefix"] == "bodies/")
        .map(|r| num(&r["ExpirationInDays"]))
        .expect("a rule for bodies/");
    let day = 86_400.0;
    let kept = param(&t, "TicketTtlSeconds", "MaxValue")
        + failover_core::ticket::RETENTION_AFTER_EXPIRY_MS as f64 / 1000.0;
    assert!(expiry * day > kept, "{expiry} days <= {kept} s");
    let tls = at(
        &t,
        &[
            "Resources",
            "BodyBucketPolicy",
            "Properties",
            "PolicyDocument",
        ],
    );
    assert!(serde_yaml::to_string(tls)
        .unwrap()
        .contains("aws:SecureTransport"));
    for function in FUNCTIONS {
        let policies = at(&t, &["Resources", function, "Properties", "Policies"]);
        let text = serde_yaml::to_string(policies).unwrap();
        // The events function only reads tickets, so only reads bodies.
        let writes = function != "EventsFunction";
        assert!(
            text.contains("s3:GetObject") && text.contains("s3:PutObject") == writes,
            "{function} cannot read (and write, unless it only reads) bodies"
        );
        assert!(text.contains("BodyBucket.Arn}/bodies/*"), "{function}");
        assert!(!text.contains("s3:*") && !text.contains("DeleteObject"));
    }
}

/// A routes file reaches the functions as a layer (at `/opt/<RoutesFile>`),
/// only when `RoutesFile` is set; its directory is in the repository.
#[test]
fn the_routes_file_ships_in_a_layer_when_set() {
    let t = template();
    let layer = at(&t, &["Resources", "RoutesLayer"]);
    assert_eq!(layer["Condition"], "UseRoutes");
    let dir = layer["Properties"]["ContentUri"]
        .as_str()
        .expect("ContentUri");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(root.join(dir).is_dir(), "{dir} is missing");
    let globals = serde_yaml::to_string(&t["Globals"]["Function"]).unwrap();
    assert!(globals.contains("RoutesLayer") && globals.contains("UseRoutes"));
    let env = serde_yaml::to_string(&t["Globals"]["Function"]["Environment"]).unwrap();
    assert!(
        env.contains("ROUTES_FILE") && env.contains("/opt/${RoutesFile}"),
        "{env}"
    );
}

/// With a collector layer, every function exports its spans to the
/// layer's OTLP/HTTP receiver on localhost; without, nothing is exported.
#[test]
fn traces_go_to_the_collector_layer_when_one_is_given() {
    let t = template();
    assert_eq!(
        at(&t, &["Parameters", "OtelCollectorLayerArn", "Default"]),
        ""
    );
    let layers = serde_yaml::to_string(&t["Globals"]["Function"]["Layers"]).unwrap();
    assert!(
        layers.contains("UseOtel") && layers.contains("OtelCollectorLayerArn"),
        "{layers}"
    );
    let vars = at(&t, &["Globals", "Function", "Environment", "Variables"]);
    let endpoint = tag(&vars["OTEL_EXPORTER_OTLP_ENDPOINT"], "!If").expect("!If");
    assert_eq!(endpoint[0], "UseOtel");
    assert_eq!(endpoint[2], "", "no layer: no endpoint, nothing exported");
    // What the functions make of each branch.
    let read = |value: &Value| {
        let value = value.as_str().map(str::to_string);
        let get = move |k: &str| {
            (k == "OTEL_EXPORTER_OTLP_ENDPOINT")
                .then(|| value.clone())
                .flatten()
        };
        failover_adapters::otlp::Settings::from_env(&get).expect("valid")
    };
    let on = read(&endpoint[1]).expect("exporting");
    assert_eq!(on.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(read(&endpoint[2]), None);
}

/// The worker's notices link to the API (its own URL unless a public one
/// is given), and the default SMS fits one segment in any region.
#[test]
fn notices_link_to_the_api_and_fit_in_any_region() {
    let t = template();
    let vars = worker_variables(&t);
    let base = tag(&vars["PUBLIC_BASE_URL"], "!If").expect("!If");
    assert_eq!(base[0], "UsePublicBaseUrl");
    let own = tag(&base[2], "!Sub").expect("!Sub");
    let output = tag(at(&t, &["Outputs", "ApiUrl", "Value"]), "!Sub").expect("!Sub");
    assert_eq!(own, output, "the notices' URL is the API's");
    // The longest API id, region and partition suffix there are.
    let longest = own
        .as_str()
        .unwrap()
        .replace("${HttpApi}", "abcdefghij")
        .replace("${AWS::Region}", "ap-southeast-5")
        .replace("${AWS::URLSuffix}", "amazonaws.com.cn");
    failover_core::notice::Notices::new(None, None, None, Some(&longest)).expect("fits");
    for name in [
        "NOTICE_TEMPLATE_SUBJECT",
        "NOTICE_TEMPLATE_EMAIL",
        "NOTICE_TEMPLATE_SMS",
    ] {
        assert!(tag(&vars[name], "!Ref").is_some(), "{name} is a parameter");
    }
}

/// Each lane has its queue, redriving to its own dead-letter queue, polled
/// by the worker through a mapping of its own; each function may send to
/// what it sends to (the API: every lane's queue, and it counts them for
/// `/health`; the worker: every queue and dead-letter queue, as it re-sends
/// a message it holds back or moves poison; the sweeper: every queue).
/// The emulators enforce no IAM, so this is where a missing grant shows.
#[test]
fn every_lane_has_its_queue_mapping_and_grants() {
    let t = template();
    let lanes = [
        (
            "CriticalQueue",
            "CriticalDeadLetterQueue",
            "QUEUE_URL_CRITICAL",
        ),
        ("RequestQueue", "RequestDeadLetterQueue", "QUEUE_URL"),
        ("BulkQueue", "BulkDeadLetterQueue", "QUEUE_URL_BULK"),
    ];
    let events = at(&t, &["Resources", "WorkerFunction", "Properties", "Events"]);
    let globals = at(&t, &["Globals", "Function", "Environment", "Variables"]);
    let grants = |function: &str| {
        let policies = at(&t, &["Resources", function, "Properties", "Policies"]);
        serde_yaml::to_string(policies).expect("policies")
    };
    let (api, worker, sweeper) = (
        grants("ApiFunction"),
        grants("WorkerFunction"),
        grants("SweeperFunction"),
    );
    for (queue, dlq, variable) in lanes {
        let redrive = at(&t, &["Resources", queue, "Properties", "RedrivePolicy"]);
        let target = tag(&redrive["deadLetterTargetArn"], "!GetAtt").expect("GetAtt");
        assert_eq!(target.as_str(), Some(format!("{dlq}.Arn").as_str()));
        assert_eq!(tag(&globals[variable], "!Ref").expect("Ref"), queue);
        let mapped = events.as_mapping().expect("events").values().any(|e| {
            tag(&e["Properties"]["Queue"], "!GetAtt").and_then(Value::as_str)
                == Some(format!("{queue}.Arn").as_str())
                && e["Properties"]["FunctionResponseTypes"][0] == "ReportBatchItemFailures"
        });
        assert!(mapped, "no worker mapping for {queue}");
        let arn = format!("{queue}.Arn");
        for (name, text) in [("api", &api), ("worker", &worker), ("sweeper", &sweeper)] {
            assert!(text.contains(&arn), "{name} cannot send to {queue}: {text}");
        }
        assert!(worker.contains(&format!("{dlq}.Arn")), "worker and {dlq}");
        assert!(worker.contains(&format!("QueueName: !GetAtt {queue}.QueueName")));
    }
    assert!(api.contains("sqs:SendMessage") && api.contains("sqs:GetQueueAttributes"));
    assert!(worker.contains("sqs:SendMessage") && sweeper.contains("sqs:SendMessage"));
}
